"""What being preempted costs a CPU hog: its rate beside a 5 ms ticker ÷ its rate alone.

``hog_cost``: one thread runs the pure-Python hog of `fairness` in ``windows``
windows of ``window`` seconds each, and counts its loop iterations per window. In
every other window a ticker thread wakes every 5 ms (``time.sleep``); in the
windows between, it waits on an event with no timeout, so a preemptive scheduler
has nothing to preempt the hog for. Each ticking window's rate is divided by the
mean of its two neighbours' rates, and the median of those ratios is reported.

Why windows and not two runs: this 2-core machine is shared, and its speed drifts
by 10-20 % between seconds (a 1 s solo hog before and after a 3 s run beside the
ticker gave ratios from 0.78 to 1.15 for the same runtime); neighbouring 100 ms
windows see the same machine. On a cooperative runtime the ticker never runs
while the hog does (the ratio is ~1 and means nothing: the hog starved it).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable
from time import monotonic

from ._spec import Context, Figures, Metric, Target, Workload

__all__ = ["WORKLOADS"]

INTERVAL = 0.005


class _Switch:
    """Whether the ticker ticks; the hog flips it at each window."""

    def __init__(self) -> None:
        self.ticking = False
        self.stop = False
        self.wakes = 0


def _hog_windows(windows: int, window: float, switch: _Switch, wake: Callable[[], None]) -> list[float]:
    """The hog, window by window; returns each window's iterations per second.

    ``wake`` wakes the ticker (an event's ``set``) when a ticking window begins."""
    x = 0
    rates = []
    for k in range(windows):
        switch.ticking = k % 2 == 1
        if switch.ticking:
            wake()
        iterations = 0
        start = monotonic()
        end = start + window
        while True:
            for i in range(1000):
                x = (x * 31 + i) % 1_000_003
            iterations += 1000
            now = monotonic()
            if now >= end:
                break
        rates.append(iterations / (now - start))
    switch.ticking = False
    switch.stop = True
    wake()
    return rates


def _figures(rates: list[float], wakes: int) -> Figures:
    ratios = [rates[k] / ((rates[k - 1] + rates[k + 1]) / 2) for k in range(1, len(rates) - 1, 2)]
    return {"hog_vs_solo": statistics.median(ratios), "wakes": float(wakes)}


def run_threaded(ctx: Context, windows: int, window: float) -> Figures:
    """Plain ``threading`` code, for every patched runtime and for OS threads."""
    switch, wake = _Switch(), threading.Event()

    def tick() -> None:
        while not switch.stop:
            if not switch.ticking:
                wake.wait()
                wake.clear()
                continue
            time.sleep(INTERVAL)
            switch.wakes += 1

    ticking = threading.Thread(target=tick)
    ticking.start()
    out: list[float] = []
    hogging = threading.Thread(target=lambda: out.extend(_hog_windows(windows, window, switch, wake.set)))
    hogging.start()
    hogging.join()
    ticking.join()
    if len(out) != windows:
        raise AssertionError("the hog did not finish: its thread failed (traceback above)")
    return _figures(out, switch.wakes)


async def run_async(ctx: Context, windows: int, window: float) -> Figures:
    """The coroutine twin: the hog in a task that never awaits (the ticker starves)."""
    switch = _Switch()
    wake = asyncio.Event()

    async def tick() -> None:
        while not switch.stop:
            if not switch.ticking:
                await wake.wait()
                wake.clear()
                continue
            await asyncio.sleep(INTERVAL)
            switch.wakes += 1

    ticking = asyncio.create_task(tick())
    await asyncio.sleep(0)

    async def hog() -> list[float]:
        return _hog_windows(windows, window, switch, wake.set)

    rates = await asyncio.create_task(hog())
    await ticking
    return _figures(rates, switch.wakes)


WORKLOADS = [
    Workload(
        name="hog_cost",
        title="CPU hog: rate beside a 5 ms ticker ÷ rate alone (interleaved 100 ms windows)",
        metrics=(
            Metric("hog_vs_solo", "hog rate beside the ticker", "× solo", higher_is_better=True,
                   target=Target("absolute", ">=", 0.97), primary=True),
            Metric("wakes", "ticker wake-ups", "wakes", higher_is_better=True),
        ),
        run_threaded=run_threaded,
        run_async=run_async,
        full={"windows": 41, "window": 0.1},
        quick={"windows": 21, "window": 0.1},
        note="The cooperative runtimes starve the ticker while the hog runs (few wake-ups), "
             "so their ratio is ~1 and says nothing about preemption's cost.",
    ),
]
