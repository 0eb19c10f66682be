"""Fairness demo: a CPU hog and a stuck call cannot freeze the other green threads.

greensched runs many "threads" (greenlets) on one OS thread. Green threads usually
take turns when one of them waits (``greensched.sleep``, a lock, a socket), but two
kinds of thread never wait, and on a purely cooperative scheduler either one would
freeze everybody else:

* a **CPU hog**: a tight pure-Python loop doing arithmetic;
* a thread stuck in an **unpatched blocking call**: here the C-level
  ``time.sleep(1)`` from the standard library, called again and again (the classic
  mistake: forgetting to use ``greensched.sleep`` or to ``patch_all()``).

greensched adds a timer. Every slice (10 ms by default) SIGALRM asks the running
thread to step aside at the next safe point, and the others get their turn. A thread
stuck in a blocking call is switched away from too; its call resumes afterwards.

To see it, a third thread, the **ticker**, wants to wake up every 5 ms
(``greensched.sleep(0.005)``) and records how late each wake-up is. With preemption
on it keeps ticking, late by about a slice at worst; with ``--no-preempt`` it starves
until the hog gives up on its own.

Run it::

    python examples/fairness.py                 # preemption on, 10 ms slice, 3 s
    python examples/fairness.py --no-preempt    # watch the ticker starve
    python examples/fairness.py --slice-ms 2    # a shorter slice: less lateness

The last line is the summary in a machine-readable form (``summary: key=value ...``),
which tests/test_examples.py parses.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from time import monotonic

import greensched

TICK_S = 0.005  # the ticker wants to wake up this often
PROGRESS_EVERY_S = 0.5


class Shared:
    """What the green threads report; read by the main thread for progress lines."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline  # when the demo is over
        self.stop = greensched.Event()  # set by main at the end: hog and sleeper check it
        self.hog_iterations = 0
        self.sleeper_calls = 0
        self.lateness: list[float] = []  # seconds late, one per ticker wake-up


def hog(shared: Shared) -> None:
    """(a) A pure-Python CPU hog: arithmetic in a tight loop, it never waits."""
    x = 0
    while not shared.stop.is_set():
        for i in range(10_000):
            x = (x * 31 + i) % 1_000_003
        shared.hog_iterations += 10_000
        # Without preemption nobody else runs, so nobody could set `stop`: the hog
        # gives up by itself at the deadline, or --no-preempt would never end.
        if monotonic() >= shared.deadline:
            break


def sleeper(shared: Shared) -> None:
    """(b) The blocking mistake: the real, unpatched C-level time.sleep(1)."""
    while not shared.stop.is_set() and monotonic() < shared.deadline:
        time.sleep(1)  # blocks the whole OS thread... unless the timer steps in
        shared.sleeper_calls += 1


def ticker(shared: Shared) -> None:
    """(c) Wants to wake every 5 ms; records how late each wake-up is."""
    while not shared.stop.is_set():
        due = monotonic() + TICK_S
        greensched.sleep(TICK_S)
        shared.lateness.append(max(monotonic() - due, 0.0))


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list (NaN if it is empty)."""
    if not sorted_values:
        return float("nan")
    rank = math.ceil(pct / 100.0 * len(sorted_values))  # 1-based
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def ms(seconds: float) -> str:
    return "n/a" if seconds != seconds else f"{seconds * 1000.0:.1f}"  # NaN -> n/a


def progress_line(shared: Shared, elapsed: float) -> str:
    worst = max(shared.lateness, default=float("nan"))
    return (f"[{elapsed:4.1f}s] ticks={len(shared.lateness)}  worst lateness={ms(worst)} ms  "
            f"hog iterations={shared.hog_iterations:,}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="A CPU hog and an unpatched time.sleep(1) run next to a ticker that "
                    "wants to wake every 5 ms; greensched's preemption keeps the ticker "
                    "ticking. Prints progress, then a summary of the ticker's lateness.",
    )
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="how long the demo runs (default: 3)")
    parser.add_argument("--no-preempt", action="store_true",
                        help="turn preemption off first (set_preemption(False)): the hog "
                             "and the stuck sleep then starve the ticker")
    parser.add_argument("--slice-ms", type=float, default=None,
                        help="the preemption time slice in milliseconds (default: 10, or "
                             "GREENSCHED_SLICE_MS)")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    if args.slice_ms is not None and not 0 < args.slice_ms < 3_600_000:
        # Checked here so the error names the flag typed, not set_preemption's slice_ms.
        parser.error(f"--slice-ms {args.slice_ms:g}: give the slice as a positive number of "
                     f"milliseconds below one hour, e.g. --slice-ms 5 (--no-preempt turns "
                     f"preemption off)")

    try:
        greensched.set_preemption(enabled=not args.no_preempt, slice_ms=args.slice_ms)
    except ValueError as exc:
        parser.error(str(exc))
    enabled, slice_ms = greensched.get_preemption()
    tty = sys.stdout.isatty()

    print(f"greensched fairness demo: {args.seconds:g} s, preemption "
          f"{'ON, slice ' + format(slice_ms, 'g') + ' ms' if enabled else 'OFF'}")
    print("running: a CPU hog, an unpatched time.sleep(1) loop, and a 5 ms ticker")
    if not enabled:
        print("(preemption is off: expect no progress until the hog gives up at the end)")
    sys.stdout.flush()

    start = monotonic()
    shared = Shared(deadline=start + args.seconds)
    threads = [greensched.spawn(hog, shared), greensched.spawn(sleeper, shared),
               greensched.spawn(ticker, shared)]

    # The main program is a green thread too: it wakes every 0.5 s to report.
    while True:
        greensched.sleep(max(min(PROGRESS_EVERY_S, shared.deadline - monotonic()), 0.001))
        elapsed = monotonic() - start
        line = progress_line(shared, elapsed)
        if tty:
            print("\r" + line + "\033[K", end="", flush=True)  # update in place
        else:
            print(line, flush=True)
        if monotonic() >= shared.deadline:
            break
    if tty:
        print()

    # Stop everyone and wait for them. The sleeper may be in the middle of its
    # time.sleep(1): joining it can take up to a second.
    elapsed = monotonic() - start
    ticks = len(shared.lateness)
    shared.stop.set()
    for thread in threads:
        thread.join()
    stats = greensched.stats()

    expected = int(elapsed / TICK_S)
    late = sorted(shared.lateness[:ticks])  # wake-ups before the stop, as counted
    p50, p99, worst = percentile(late, 50), percentile(late, 99), max(late, default=float("nan"))
    print()
    print(f"ticker:  {ticks} of ~{expected} wake-ups ({100.0 * ticks / max(expected, 1):.0f}%), "
          f"late by p50 {ms(p50)} ms, p99 {ms(p99)} ms, max {ms(worst)} ms")
    print(f"hog:     {shared.hog_iterations:,} loop iterations")
    print(f"sleeper: {shared.sleeper_calls} unpatched time.sleep(1) calls finished")
    blocked = stats.get("call_preemptions", 0) + stats.get("stuck_preemptions", 0)
    print(f"preemptions: {stats.get('preemptions', 0)} "
          f"(of which {blocked} from inside a C call such as the unpatched sleep)")
    fields = {
        "preempt": "on" if enabled else "off",
        "slice_ms": f"{slice_ms:g}",
        "seconds": f"{elapsed:.3f}",
        "ticks": ticks,
        "expected": expected,
        "p50_ms": f"{p50 * 1000.0:.3f}",
        "p99_ms": f"{p99 * 1000.0:.3f}",
        "max_ms": f"{worst * 1000.0:.3f}",
        "hog_iterations": shared.hog_iterations,
        "sleeper_calls": shared.sleeper_calls,
        "preemptions": stats.get("preemptions", 0),
        "call_preemptions": stats.get("call_preemptions", 0),
        "stuck_preemptions": stats.get("stuck_preemptions", 0),
    }
    print("summary: " + " ".join(f"{k}={v}" for k, v in fields.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
