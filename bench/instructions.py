"""Instructions per unit of work, counted by valgrind: a figure the machine's load cannot move.

    .venv/bin/python bench/instructions.py [--runtimes greensched,gevent] [--only sleep0,...]

Wall-clock figures on a shared 2-core VM move by 15-40 % between repetitions
(`RESULTS.md`, "Notes on noise"); the number of instructions a workload executes
does not. Each (runtime, workload) runs twice under ``valgrind --tool=cachegrind``
through `worker.py`, at a small and a large size; the difference in instructions,
divided by the difference in units of work (yields, threads, round trips), is the
cost of one unit with start-up, imports and warm-up cancelled out.

What it is good for: telling whether a change to a hot path made it cheaper
(differences of 1 % are real), and comparing runtimes' own work per unit. What it
is not: a speed ratio. Instructions are not time (gevent's compiled hub, cache
misses and syscalls weigh differently), so `run.py` remains the judge of targets.

Limits: valgrind cannot install greensched's second preemption signal (SIGRTMAX is
its own), so greensched runs with ``GREENSCHED_PREEMPT=0``; ticks cost little next
to these workloads (one every 5 ms). OS threads are left out: valgrind runs them
one at a time. Each run takes 5-60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent


@dataclass(frozen=True)
class Sizes:
    """Two sizes of one workload, and the units of work each one does."""

    unit: str
    small: dict[str, Any]
    large: dict[str, Any]
    units: Callable[[dict[str, Any]], int]


SIZES: dict[str, Sizes] = {
    "sleep0": Sizes("yield", {"threads": 100, "per_thread": 100, "warmup": 20},
                    {"threads": 100, "per_thread": 600, "warmup": 20},
                    lambda p: p["threads"] * p["per_thread"]),
    "spawn_join": Sizes("thread", {"total": 1_000, "batch": 100, "warmup": 200},
                        {"total": 6_000, "batch": 100, "warmup": 200},
                        lambda p: p["total"]),
    "queue_pingpong": Sizes("round trip", {"rounds": 1_000, "warmup": 200},
                            {"rounds": 6_000, "warmup": 200}, lambda p: p["rounds"]),
    "tcp_echo": Sizes("round trip",
                      {"connections": 50, "messages": 10, "size": 4096, "warmup": 2},
                      {"connections": 50, "messages": 60, "size": 4096, "warmup": 2},
                      lambda p: p["connections"] * p["messages"]),
    # The PostgreSQL ones need BENCH_PG_URL (a server of your own: the client's work is counted).
    **{f"pg_{driver}": Sizes("round trip", {"threads": 10, "queries": 50, "warmup": 5},
                             {"threads": 10, "queries": 300, "warmup": 5},
                             lambda p: p["threads"] * p["queries"])
       for driver in ("psycopg2", "psycopg", "pg8000")},
}

RUNTIMES = ("greensched", "gevent", "eventlet", "asyncio", "uvloop")

_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def count(runtime: str, workload: str, params: dict[str, Any]) -> int:
    """Instructions of one `worker.py` run under cachegrind."""
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, str(BENCH_DIR / "worker.py"), runtime, workload,
           "--params=" + json.dumps(params)]
    env = dict(os.environ, GREENSCHED_PREEMPT="0")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO_DIR),
                          timeout=1200)
    found = _REFS.search(proc.stderr)
    if proc.returncode != 0 or found is None:
        tail = [ln for ln in proc.stderr.splitlines() if ln.strip() and "==" not in ln][-3:]
        raise RuntimeError(f"{runtime} {workload}: exit status {proc.returncode}: {tail}")
    return int(found.group(1).replace(",", ""))


def per_unit(runtime: str, workload: str) -> float:
    """Instructions per unit of work: the large run minus the small one."""
    sizes = SIZES[workload]
    extra_units = sizes.units(sizes.large) - sizes.units(sizes.small)
    return (count(runtime, workload, sizes.large) - count(runtime, workload, sizes.small)) / extra_units


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", default="greensched,gevent",
                        help=f"comma-separated, of: {', '.join(RUNTIMES)} (default: greensched,gevent)")
    parser.add_argument("--only", default=",".join(SIZES),
                        help=f"comma-separated workloads (default: all): {', '.join(SIZES)}")
    args = parser.parse_args(argv)
    chosen = [r for r in args.runtimes.split(",") if r]
    workloads = [w for w in args.only.split(",") if w]
    for name in chosen:
        if name not in RUNTIMES:
            parser.error(f"unknown runtime {name!r}; known: {', '.join(RUNTIMES)}")
    for name in workloads:
        if name not in SIZES:
            parser.error(f"unknown workload {name!r}; known: {', '.join(SIZES)}")
    if any(w.startswith("pg_") for w in workloads) and not os.environ.get("BENCH_PG_URL"):
        parser.error("the pg_* workloads need BENCH_PG_URL=postgresql://... (a running server)")
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (Debian: apt-get install valgrind)")
    print("| workload | unit | " + " | ".join(chosen) + " |")
    print("|---|---|" + "---|" * len(chosen))
    baseline = "gevent" if "gevent" in chosen else chosen[0]
    for workload in workloads:
        values: dict[str, float] = {}
        for runtime in chosen:
            try:
                values[runtime] = per_unit(runtime, workload)
            except RuntimeError as exc:
                print(f"instructions: {exc}", file=sys.stderr)
        base = values.get(baseline)
        cells = [f"{values[r]:,.0f}" + (f" ({values[r] / base:.2f}×)" if base else "")
                 if r in values else "error" for r in chosen]
        print(f"| {workload} | instructions per {SIZES[workload].unit} | " + " | ".join(cells) + " |",
              flush=True)
    print(f"\nRatios are to {baseline}'s count; fewer instructions is less work, "
          f"not necessarily less time.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
