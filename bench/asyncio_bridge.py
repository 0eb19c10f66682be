"""The asyncio bridges against asyncio's OS-thread ones: ``asyncio_bridge.py [--reps N] [--quick]``.

Also issue 17's 50 concurrent ``asyncio.run()`` calls, green threads against OS threads.

Runs `workloads/asyncio_bridge.py` in fresh processes: the green side after
``greensched.patch_all()`` (``to_green``, ``run_coroutine``), the threads side with
no greensched at all (``asyncio.to_thread``, ``run_coroutine_threadsafe``).
Repetitions alternate the two sides (green first on odd ones), and the table shows
medians and the green/OS-thread ratio of each direction (goal: ≥ 10×).
``--json FILE`` keeps every figure. Run it with the venv's Python.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PREFIX = "BRIDGE-RESULT "
PAIRS = [("to_green", "to_thread", "coroutine → blocking code, and back"),
         ("run_coroutine", "run_coroutine_threadsafe", "blocking code → coroutine, and back")]
GOAL = 10.0


def child(side: str, scale: float) -> int:
    if side == "green":
        import greensched

        greensched.patch_all()
    sys.path.insert(0, str(HERE))
    from workloads import asyncio_bridge

    print(PREFIX + json.dumps(asyncio_bridge.measure(side, scale)), flush=True)
    return 0


def run_side(side: str, scale: float) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, __file__, "--child", side, "--scale", str(scale)],
                          capture_output=True, text=True, timeout=300, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(PREFIX):
            return json.loads(line[len(PREFIX):])  # type: ignore[no-any-return]
    raise RuntimeError(f"the {side} run failed (exit {proc.returncode}):\n{proc.stderr}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a tenth of the calls, 1 repetition")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--child", choices=["green", "threads"], help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.scale)
    reps, scale = (1, 0.1) if args.quick else (args.reps, 1.0)
    runs: dict[str, list[float]] = {}
    for rep in range(reps):
        for side in (("green", "threads") if rep % 2 == 0 else ("threads", "green")):
            figures = run_side(side, scale)
            print(f"rep {rep + 1} {side}: " + ", ".join(
                f"{k} {v:,.2f}" if k.startswith("fifty") else f"{k} {v:,.0f}/s"
                for k, v in figures.items()), file=sys.stderr)
            for key, value in figures.items():
                if key.startswith("fifty_runs"):
                    key = f"{side}:{key}"
                runs.setdefault(key, []).append(value)
    median = {k: statistics.median(v) for k, v in runs.items()}
    print("| direction | greensched | round trips/s | OS threads | round trips/s "
          f"| ratio (goal ≥{GOAL:g}×) |")
    print("|---|---|---:|---|---:|---:|")
    for green, threads, what in PAIRS:
        ratio = median[green] / median[threads]
        verdict = "met" if ratio >= GOAL else "not met"
        print(f"| {what} | `{green}` | {median[green]:,.0f} | `{threads}` | {median[threads]:,.0f} "
              f"| {ratio:.1f}× ({verdict}) |")
    print()
    print("| 50 × `asyncio.run()` at once (sleep 0.5 s + one TCP round trip), 10 ms ticker beside "
          "| green threads | OS threads | goal (green) |")
    print("|---|---:|---:|---|")
    print(f"| wall time of the 50 runs | {median['green:fifty_runs_s']:.2f} s "
          f"| {median['threads:fifty_runs_s']:.2f} s | < 1.5 s |")
    print(f"| longest ticker gap | {median['green:fifty_runs_max_gap_ms']:.1f} ms "
          f"| {median['threads:fifty_runs_max_gap_ms']:.1f} ms | < 100 ms |")
    print(f"\nmedians of {reps} repetition(s), sides alternated; each call waited for before the next.")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "median": median}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
