"""Compare two full runs: where do their medians, or their ratios to gevent, differ?

    .venv/bin/python bench/compare.py RUN1.json RUN2.json [--threshold 0.10]

Reads the ``--json`` files of two ``bench/run.py`` runs and prints a markdown table
of every (workload, metric, runtime) whose median figure or whose ratio to gevent
(to OS threads on a row whose target is ``× threads``) differs by more than the
threshold (default 10%) between the two, relative to the smaller value; figures of
zero on both sides are equal.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads  # noqa: E402
from report import (  # noqa: E402
    Cell,
    Results,
    fmt_ratio,
    fmt_value,
    metric_title,
    paired_ratio,
    ratio_base,
)


def load_results(path: Path) -> Results:
    """Rebuild the per-repetition cells of a run from its JSON file."""
    data: dict[str, Any] = json.loads(path.read_text())
    results: Results = {}
    for run in data["runs"]:
        cell = results.setdefault((run["workload"], run["runtime"]), Cell())
        if run["figures"] is not None:
            cell.figures[run["rep"]] = run["figures"]
        else:
            cell.errors.append(run["error"] or "error")
    return results


def _relative(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or (a == 0 and b == 0):
        return None
    low = min(abs(a), abs(b))
    return abs(a - b) / low if low else float("inf")


def rows(first: Results, second: Results, threshold: float) -> list[list[str]]:
    """Table rows: workload, metric, runtime, both medians and ratios, and the differences."""
    out = []
    names = workloads.names()
    cells = sorted(set(first) & set(second),
                   key=lambda c: (names.index(c[0]) if c[0] in names else len(names), c[1]))
    for workload_name, runtime in cells:
        workload = workloads.get(workload_name)
        a_cell, b_cell = first[(workload_name, runtime)], second[(workload_name, runtime)]
        for metric in workload.metrics:
            base = ratio_base(metric)  # gevent, or threads for a `× threads` row
            a, b = a_cell.median(metric.key), b_cell.median(metric.key)
            ra = paired_ratio(a_cell, first.get((workload_name, base)), metric.key)
            rb = paired_ratio(b_cell, second.get((workload_name, base)), metric.key)
            d_fig, d_ratio = _relative(a, b), _relative(ra, rb)
            if runtime == base:
                d_ratio = None
            if max(d_fig or 0.0, d_ratio or 0.0) <= threshold:
                continue
            out.append([
                workload_name, metric_title(metric), runtime,
                fmt_value(a, metric.unit) if a is not None else "—",
                fmt_value(b, metric.unit) if b is not None else "—",
                f"{d_fig:.0%}" if d_fig is not None else "",
                fmt_ratio(ra) if ra is not None else "—",
                fmt_ratio(rb) if rb is not None else "—",
                f"{d_ratio:.0%}" if d_ratio is not None else "",
            ])
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the differences; exit status 0."""
    parser = argparse.ArgumentParser(description="Compare two bench/run.py --json files.")
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--threshold", type=float, default=0.10,
                        help="relative difference to report (default 0.10 = 10%%)")
    args = parser.parse_args(argv)
    table = rows(load_results(args.first), load_results(args.second), args.threshold)
    print("| workload | metric | runtime | run 1 | run 2 | figure diff | ratio 1 | ratio 2 | "
          "ratio diff |\n|---|---|---|---|---|---|---|---|---|")
    for row in table:
        print("| " + " | ".join(row) + " |")
    if not table:
        print(f"\n(nothing differs by more than {args.threshold:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
