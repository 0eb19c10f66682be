"""Turning runs into medians, ratios to gevent, target verdicts and a markdown table.

The ratio shown for a cell is *paired*: the median, over the repetitions, of the
cell's figure divided by gevent's figure **in the same repetition**. Each
repetition runs every runtime of a workload back to back, so a pair shares the
machine's conditions of that moment (other jobs, frequency); on a noisy machine
this is steadier than dividing two medians taken across the whole run.

A row whose target is to OS threads (``Target("vs_threads", ...)``, shown ``≤0.5×
threads``) is the one exception: its ratios, and its verdict, are to the ``threads``
cell of the same repetition (`ratio_base`). Such a row repeats the figure of another
row that carries the figure's absolute target (same metric key), so each row keeps
one target and one verdict.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from runtimes import BASELINE
from workloads import Metric, Workload

#: A cell that does not apply (no coroutine twin for this workload).
NOT_APPLICABLE = "—"


@dataclass
class Cell:
    """Every repetition of one (workload, runtime) pair."""

    #: repetition number -> that run's figures (successful runs only)
    figures: dict[int, dict[str, float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    not_applicable: bool = False

    def values(self, key: str) -> list[float]:
        """The metric's figure in every successful repetition."""
        return [f[key] for f in self.figures.values() if key in f and not math.isnan(f[key])]

    def median(self, key: str) -> float | None:
        """Median over the successful repetitions, or None if there were none."""
        values = self.values(key)
        return statistics.median(values) if values else None

    def spread(self, key: str) -> float | None:
        """(max - min) / median over the repetitions; None with fewer than two."""
        values = self.values(key)
        if len(values) < 2:
            return None
        middle = statistics.median(values)
        return (max(values) - min(values)) / middle if middle else None


#: (workload name, runtime name) -> its repetitions.
Results = dict[tuple[str, str], Cell]


def paired_ratio(cell: Cell | None, base: Cell | None, key: str) -> float | None:
    """Median over repetitions of ``figure / baseline figure`` of the same repetition.

    None when no repetition has both figures, or the baseline's is 0 in all of them.
    """
    if cell is None or base is None:
        return None
    ratios = []
    for rep, figures in cell.figures.items():
        other = base.figures.get(rep)
        if other is None or key not in figures or key not in other:
            continue
        if other[key] == 0 or math.isnan(other[key]) or math.isnan(figures[key]):
            continue
        ratios.append(figures[key] / other[key])
    return statistics.median(ratios) if ratios else None


def ratio_base(metric: Metric) -> str:
    """The runtime a row's ratios are to: gevent, or the base of its target (threads)."""
    if metric.target is not None and metric.target.base is not None:
        return metric.target.base
    return BASELINE


def distinct_metrics(workload: Workload) -> list[Metric]:
    """The workload's metrics, a key that several rows repeat only once (its first row)."""
    first: dict[str, Metric] = {}
    for metric in workload.metrics:
        first.setdefault(metric.key, metric)
    return list(first.values())


def metric_title(metric: Metric) -> str:
    """``ticker lateness p99 (ms)``; the unit only once when the label already says it."""
    return metric.label if metric.unit in metric.label else f"{metric.label} ({metric.unit})"


def fmt_ratio(r: float) -> str:
    """``1.19×``; two significant digits below 0.1 (``0.0018×``), never a bare ``0.00×``."""
    return f"{r:.2f}×" if r >= 0.1 or r == 0 else f"{r:.2g}×"


def fmt_value(value: float, unit: str) -> str:
    """A compact human number: 3 significant digits, k/M suffixes for big counts."""
    if unit == "s":
        return f"{value:.3f}"
    # 999.5 and up round to 4 digits: "1,000", never "1e+03" (nor "1e+03k")
    if unit in ("ms", "KiB", "MB/s"):
        return f"{value:.3g}" if value < 999.5 else f"{value:,.0f}"
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale * 0.9995:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def verdict(metric: Metric, results: Results, workload: Workload) -> str:
    """greensched's "met"/"not met" for the metric's target ("" without a target)."""
    if metric.target is None:
        return ""
    cell = results.get((workload.name, "greensched"))
    mine = cell.median(metric.key) if cell else None
    if mine is None:
        return "no figure"
    base = metric.target.base
    if base is None:
        met = metric.target.met(mine, None)
    else:
        r = paired_ratio(cell, results.get((workload.name, base)), metric.key)
        met = None if r is None else metric.target.met(r, 1.0)
    if met is None:
        return f"n/a (no {base} figure)"
    return "**met**" if met else "**not met**"


def _cell_text(cell: Cell | None, base: Cell | None, metric: Metric,
               footnotes: list[str]) -> str:
    if cell is None:
        return "not run"
    if cell.not_applicable:
        return NOT_APPLICABLE
    value = cell.median(metric.key)
    if value is None:
        footnotes.append(cell.errors[0] if cell.errors else "no figure")
        return f"error [{len(footnotes)}]"
    text = fmt_value(value, metric.unit)
    r = paired_ratio(cell, base, metric.key)
    text += f" ({fmt_ratio(r)})" if r is not None else " (n/a)"
    if cell.errors:
        footnotes.append(f"{len(cell.errors)} of {len(cell.errors) + len(cell.figures)} "
                         f"repetitions failed: {cell.errors[0]}")
        text += f" [{len(footnotes)}]"
    return text


def table(workloads: list[Workload], runtimes: list[str], results: Results) -> list[str]:
    """The markdown table: one row per metric, one column per runtime, plus footnotes."""
    head = ["workload", "metric (unit)", "better", "target (greensched)", *runtimes,
            "greensched vs target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    footnotes: list[str] = []
    for workload in workloads:
        for metric in workload.metrics:
            base = results.get((workload.name, ratio_base(metric)))
            row = [
                workload.name if metric.primary else "″",
                metric_title(metric),
                "↑ higher" if metric.higher_is_better else "↓ lower",
                metric.target.describe(metric.unit) if metric.target else "",
                *(_cell_text(results.get((workload.name, rt)), base, metric, footnotes)
                  for rt in runtimes),
                verdict(metric, results, workload),
            ]
            lines.append("| " + " | ".join(row) + " |")
    if footnotes:
        lines.append("")
        lines.extend(f"[{n}] {text}" for n, text in enumerate(footnotes, 1))
    return lines


def legend(reps: int, workloads: list[Workload] | None = None) -> list[str]:
    """How to read the table; the sentence on ratios to threads only if a row has one."""
    lines = [
        f"Each cell: the median of {reps} repetition(s), each in a fresh process; in "
        f"parentheses the **ratio to {BASELINE}**: figure ÷ {BASELINE}'s figure of the same "
        f"repetition, median over the repetitions.",
        "For ↑ rows (higher is better) a ratio above 1× is better than gevent; for ↓ rows "
        "(lower is better: memory, lateness, gaps) a ratio below 1× is better. Targets marked "
        "`× gevent` are about that ratio; the others are about the figure. \"—\": no "
        "equivalent coroutine code (asyncio's stdlib has no HTTP client); \"n/a\": no ratio "
        "(gevent's figure is 0).",
    ]
    if any(ratio_base(m) != BASELINE for w in workloads or [] for m in w.metrics):
        lines[-1] += (" Rows whose target reads `× threads` repeat a figure of the row above "
                      "them, with the ratio (and the verdict) to OS threads' figure of the "
                      "same repetition instead of gevent's.")
    return lines


def noisy_cells(workloads: list[Workload], runtimes: list[str], results: Results,
                threshold: float = 0.10) -> list[str]:
    """Cells whose repetitions spread by more than ``threshold`` of their median."""
    out = []
    for workload in workloads:
        for metric in distinct_metrics(workload):
            for rt in runtimes:
                cell = results.get((workload.name, rt))
                spread = cell.spread(metric.key) if cell else None
                if spread is not None and spread > threshold:
                    out.append(f"{workload.name} / {metric.label} / {rt}: {spread:.0%}")
    return out
