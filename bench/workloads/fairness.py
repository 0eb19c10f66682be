"""Fairness: a 5 ms ticker beside a CPU hog, and beside an unpatched blocking sleep.

``hog_ticker``: a thread runs a pure-Python arithmetic loop for ``seconds`` (it
never blocks) while the ticker wants to wake every 5 ms. Reported: the ticker's
wake-up lateness (p99 and max) over the wake-ups due during the hog, how many
times it woke during the hog, and the hog's own throughput (loop iterations per
second). On a cooperative runtime (gevent, eventlet, asyncio, uvloop) the hog never
yields, so the ticker starves: no wake-ups, and one wake-up late by the whole hog.

``blocking_sleep``: a thread calls the runtime's *unpatched* ``time.sleep(1)``
(greensched: ``greensched.monkey.original("time", "sleep")``; gevent:
``gevent.monkey.get_original("time", "sleep")``; eventlet:
``eventlet.patcher.original("time").sleep``; OS threads and asyncio:
``time.sleep``), the classic forgotten blocking call. Reported: the longest gap
between two ticker wake-ups around it. A cooperative runtime freezes for the whole
second.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from time import monotonic
from typing import Any

from ._spec import Context, Figures, Metric, Target, Workload
from ._ticker import Ticks, aticker, lateness_during, longest_gap, percentile, ticker, wakeups_during

INTERVAL = 0.005  # the ticker's period
LEAD_IN = 0.2  # seconds of ticking before the hog or the blocking call starts
TAIL = 0.05  # seconds of ticking after it ends


def hog(seconds: float, out: dict[str, float]) -> None:
    """Pure-Python arithmetic for ``seconds``; never blocks. Writes start, end, iterations."""
    x = 0
    iterations = 0
    start = monotonic()
    deadline = start + seconds
    while True:
        for i in range(1000):
            x = (x * 31 + i) % 1_000_003
        iterations += 1000
        if monotonic() >= deadline:
            break
    out.update(start=start, end=monotonic(), iterations=iterations)


def _hog_figures(ticks: Ticks, out: dict[str, float]) -> Figures:
    start, end = out["start"], out["end"]
    late = lateness_during(ticks, start, end)
    if not late:
        raise AssertionError("the ticker recorded no wake-up due during the hog")
    return {
        "p99_ms": percentile(late, 99) * 1000,
        "max_ms": max(late) * 1000,
        "ticks": float(wakeups_during(ticks, start, end)),
        "hog_rate": out["iterations"] / (end - start),
    }


def _beside_ticker(work: Callable[..., None], *args: Any) -> Ticks:
    """Plain ``threading`` code: start the ticker, run ``work(*args)`` in a thread of
    its own after a lead-in, let the ticker tick a little longer, stop it."""
    ticks = Ticks()
    ticking = threading.Thread(target=ticker, args=(ticks, INTERVAL))
    ticking.start()
    time.sleep(LEAD_IN)
    working = threading.Thread(target=work, args=args)
    working.start()
    working.join()
    time.sleep(TAIL)
    ticks.stop = True
    ticking.join()
    return ticks


async def _beside_aticker(work: Callable[..., None], *args: Any) -> Ticks:
    """The coroutine twin of `_beside_ticker`: ``work`` runs in a task that never awaits."""
    ticks = Ticks()
    ticking = asyncio.create_task(aticker(ticks, INTERVAL))
    await asyncio.sleep(LEAD_IN)

    async def awork() -> None:
        work(*args)

    await asyncio.create_task(awork())
    await asyncio.sleep(TAIL)
    ticks.stop = True
    await ticking
    return ticks


def run_hog_threaded(ctx: Context, seconds: float) -> Figures:
    """Plain ``threading`` code, for every patched runtime and for OS threads."""
    out: dict[str, float] = {}
    return _hog_figures(_beside_ticker(hog, seconds, out), out)


async def run_hog_async(ctx: Context, seconds: float) -> Figures:
    """The coroutine twin: the same hog, called from a task that never awaits."""
    out: dict[str, float] = {}
    return _hog_figures(await _beside_aticker(hog, seconds, out), out)


def blocker(sleep: Callable[[float], None], seconds: float, out: dict[str, float]) -> None:
    """Call the unpatched sleep; writes start and end."""
    start = monotonic()
    sleep(seconds)
    out.update(start=start, end=monotonic())


def _blocking_figures(ticks: Ticks, out: dict[str, float]) -> Figures:
    start, end = out["start"], out["end"]
    return {
        "gap_ms": longest_gap(ticks, start, end) * 1000,
        "ticks": float(wakeups_during(ticks, start, end)),
        "slept_s": end - start,
    }


def run_blocking_threaded(ctx: Context, seconds: float) -> Figures:
    """Plain ``threading`` code around the runtime's unpatched ``time.sleep``."""
    out: dict[str, float] = {}
    return _blocking_figures(_beside_ticker(blocker, ctx.original_sleep, seconds, out), out)


async def run_blocking_async(ctx: Context, seconds: float) -> Figures:
    """The coroutine twin: a task calls the blocking ``time.sleep``."""
    out: dict[str, float] = {}
    return _blocking_figures(await _beside_aticker(blocker, ctx.original_sleep, seconds, out), out)


_STARVES = ("gevent, eventlet, asyncio and uvloop are cooperative: the hog never yields, "
            "so their ticker starves (0 ticks, one wake-up late by the whole hog).")

WORKLOADS = [
    Workload(
        name="hog_ticker",
        title="CPU hog (3 s) beside a 5 ms ticker",
        metrics=(
            Metric("p99_ms", "ticker lateness p99", "ms", higher_is_better=False,
                   target=Target("absolute", "<=", 10.0), primary=True),
            Metric("max_ms", "ticker lateness max", "ms", higher_is_better=False),
            Metric("ticks", "ticks during the hog", "ticks", higher_is_better=True,
                   target=Target("absolute", ">=", 250.0)),
            Metric("hog_rate", "hog iterations/s", "it/s", higher_is_better=True,
                   target=Target("ratio", ">=", 0.97)),
        ),
        run_threaded=run_hog_threaded,
        run_async=run_hog_async,
        full={"seconds": 3.0},
        quick={"seconds": 3.0},  # the ≥250 ticks target is about a 3 s hog
        note=_STARVES,
    ),
    Workload(
        name="blocking_sleep",
        title="unpatched 1 s blocking sleep beside a 5 ms ticker",
        metrics=(
            Metric("gap_ms", "longest ticker gap", "ms", higher_is_better=False,
                   target=Target("absolute", "<=", 15.0), primary=True),
            Metric("ticks", "ticks during the sleep", "ticks", higher_is_better=True),
            Metric("slept_s", "the blocking sleep took", "s", higher_is_better=False),
        ),
        run_threaded=run_blocking_threaded,
        run_async=run_blocking_async,
        full={"seconds": 1.0},
        quick={"seconds": 1.0},
        note="The cooperative runtimes freeze for the whole blocking call.",
    ),
]
