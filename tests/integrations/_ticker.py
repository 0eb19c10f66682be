"""The ticker the driver tests' child programs run beside their waits (import after patching).

A ``threading.Thread`` that sleeps 10 ms in a loop and records its longest gap
between two ticks: a driver that blocks the OS thread shows up as one long gap.
Time the kernel kept this OS thread waiting for a CPU (other jobs on a loaded
machine, read from ``/proc/thread-self/schedstat``'s run-queue wait) is not the
green scheduler's doing and is taken out of each gap; a thread blocked in a
syscall does not wait on a run queue, so a frozen hub still shows in full.
``raw_max_gap`` keeps the gap as measured.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Ticker"]


def _run_queue_clock() -> Callable[[], float]:
    """Seconds this OS thread has spent runnable but not running, or a clock stuck at 0."""
    path = "/proc/thread-self/schedstat"
    try:
        with open(path) as f:
            int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return lambda: 0.0

    def waited() -> float:
        with open(path) as f:
            return int(f.read().split()[1]) / 1e9
    return waited


class Ticker:
    """Start at construction; `done()` stops it and returns the longest gap (seconds)."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.max_gap = 0.0
        self.raw_max_gap = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ticker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Read in the ticker's own (green) thread: all green threads share this OS thread.
        waited = _run_queue_clock()
        last, last_waited = time.monotonic(), waited()
        while not self._stop.is_set():
            time.sleep(self.interval)
            now, now_waited = time.monotonic(), waited()
            gap = now - last
            self.raw_max_gap = max(self.raw_max_gap, gap)
            self.max_gap = max(self.max_gap, gap - (now_waited - last_waited))
            last, last_waited = now, now_waited

    def done(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.max_gap
