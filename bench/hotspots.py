"""Where does a runtime spend its time on a workload? A py-spy profile, summarised.

    .venv/bin/python bench/hotspots.py RUNTIME WORKLOAD [--quick] [--top N] [--rate HZ]
                                       [--raw FILE]

Runs ``bench/worker.py RUNTIME WORKLOAD`` under ``py-spy record`` (sampling, so
greenlet switches do not confuse it as they confuse cProfile) and prints, as
markdown, the functions and lines with the most *self* time (the sample's innermost
Python frame: time in a C call such as ``greenlet.switch`` counts for the Python
line that made it) and the functions with the most *inclusive* time (anywhere on
the stack), in % of samples. Samples taken during imports (start-up) are left
out. Needs py-spy
(``.venv/bin/pip install py-spy``) and permission to ptrace the child (root, or
``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def find_py_spy() -> str | None:
    """py-spy next to this interpreter, or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record(py_spy: str, runtime: str, workload: str, quick: bool, rate: int,
           raw: Path) -> None:
    """Run the workload under py-spy, writing collapsed stacks to ``raw``."""
    cmd = [py_spy, "record", "--format", "raw", "--rate", str(rate), "--nonblocking",
           "-o", str(raw), "--", sys.executable, str(BENCH_DIR / "worker.py"), runtime, workload]
    if quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not raw.exists():
        raise RuntimeError(f"py-spy failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    print(next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH-RESULT")), ""),
          file=sys.stderr)


def _short(frame: str, keep_line: bool = False) -> str:
    """``Hub.park (/x/greensched/_core/_hub.py:180)`` -> ``Hub.park (greensched/_core/_hub.py)``.

    With ``keep_line``, the line number stays: ``Hub.park (greensched/_core/_hub.py:180)``.
    """
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, line = where.rpartition(":") if ":" in where else (where, "", "")
    for marker in ("site-packages/", "lib/python3.", "/bench/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "lib/python3.":
                path = path.split("/", 1)[-1]
    return f"{name} ({path}:{line})" if keep_line and line else f"{name} ({path})"


#: A sample whose stack holds one of these is start-up (imports), not the workload.
_STARTUP = ("_find_and_load", "<frozen importlib")


@dataclass
class Summary:
    """Sample counts: total, self per function, line and file, inclusive per function."""

    total: int = 0
    startup: int = 0
    own: Counter[str] = field(default_factory=Counter)
    own_lines: Counter[str] = field(default_factory=Counter)
    own_files: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)


def summarise(raw: Path, skip_startup: bool = True) -> Summary:
    """Count py-spy's collapsed stacks; import-time samples are left out by default."""
    out = Summary()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        if skip_startup and any(marker in f for f in frames for marker in _STARTUP):
            out.startup += count
            continue
        out.total += count
        out.own[_short(frames[-1])] += count
        out.own_lines[_short(frames[-1], keep_line=True)] += count
        out.own_files[_short(frames[-1]).partition(" (")[2].rstrip(")")] += count
        for name in {_short(f) for f in frames}:
            out.inclusive[name] += count
    return out


def main(argv: list[str] | None = None) -> int:
    """Profile one (runtime, workload) and print the hot spots."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1] if __doc__ else None)
    parser.add_argument("runtime")
    parser.add_argument("workload")
    parser.add_argument("--quick", action="store_true", help="the --quick sizes")
    parser.add_argument("--top", type=int, default=15, help="rows per table (default 15)")
    parser.add_argument("--rate", type=int, default=1000,
                        help="samples per second (default 1000)")
    parser.add_argument("--raw", type=Path, default=None,
                        help="keep py-spy's collapsed stacks in this file (for flamegraph.pl)")
    args = parser.parse_args(argv)
    py_spy = find_py_spy()
    if py_spy is None:
        parser.error("py-spy not found: install it with `.venv/bin/pip install py-spy`")
    with tempfile.TemporaryDirectory() as tmp:
        raw = args.raw or Path(tmp) / "stacks.raw"
        record(py_spy, args.runtime, args.workload, args.quick, args.rate, raw)
        summary = summarise(raw)
    if summary.total == 0:
        print("no samples recorded", file=sys.stderr)
        return 1
    print(f"## {args.runtime} / {args.workload}: {summary.total} samples "
          f"({summary.startup} start-up samples left out)\n")
    for title, counter in (("self time, by file", summary.own_files),
                           ("self time, by function", summary.own),
                           ("self time, by line", summary.own_lines),
                           ("inclusive time, by function", summary.inclusive)):
        print(f"| {title} | % of samples |\n|---|---|")
        for name, count in counter.most_common(args.top):
            print(f"| {name} | {100 * count / summary.total:.1f} |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
