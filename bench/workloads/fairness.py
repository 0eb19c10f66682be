"""Fairness: a 5 ms ticker beside a CPU hog, and beside an unpatched blocking sleep.

``hog_ticker``: a thread runs a pure-Python arithmetic loop for ``seconds`` (it
never blocks) while the ticker wants to wake every 5 ms. Reported: the ticker's
wake-up lateness (p50, p99 and max) over the wake-ups due during the hog, how many
times it woke during the hog, and the hog's own throughput (loop iterations per
second; what preemption costs it is `hog_cost`'s measurement). On a
cooperative runtime (gevent, eventlet, asyncio, uvloop) the hog never yields, so the
ticker starves: no wake-ups, and one wake-up late by the whole hog. The p99 has two
targets: an absolute one, and issue 19's ≤0.5× OS threads' p99 of the same
repetition (a second row on the same figure; see `bench/report.py`).

``blocking_sleep``: a thread calls the runtime's *unpatched* ``time.sleep(1)``
(greensched: ``greensched.monkey.original("time", "sleep")``; gevent:
``gevent.monkey.get_original("time", "sleep")``; eventlet:
``eventlet.patcher.original("time").sleep``; OS threads and asyncio:
``time.sleep``), the classic forgotten blocking call. Reported: the lateness
(p50, p99, max) of the ticker's wake-ups due during the call, and the longest gap
between two wake-ups around it. A 5 ms ticker's gap is its period plus the
lateness, so the gap of a healthy ticker is ~5 ms and cannot be held under 5 ms:
the target is on the lateness. A cooperative runtime freezes for the whole second.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic

from ._spec import Context, Figures, Metric, Target, Workload
from ._ticker import (
    INTERVAL,
    LEAD_IN,
    TAIL,
    Ticks,
    abeside_ticker,
    beside_ticker,
    lateness_during,
    lateness_ms,
    longest_gap,
    wakeups_during,
)

__all__ = ["INTERVAL", "LEAD_IN", "TAIL", "WORKLOADS", "blocker", "hog"]


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


def hog_rate(out: dict[str, float]) -> float:
    """Loop iterations per second of a finished `hog`; a clear error if it did not finish."""
    if "end" not in out:
        raise AssertionError("the hog did not finish: its thread failed (traceback above)")
    return out["iterations"] / (out["end"] - out["start"])


def _hog_figures(ticks: Ticks, out: dict[str, float]) -> Figures:
    rate = hog_rate(out)
    start, end = out["start"], out["end"]
    figures = lateness_ms(lateness_during(ticks, start, end), "the hog")
    return {
        **figures,
        "ticks": float(wakeups_during(ticks, start, end)),
        "hog_rate": rate,
    }


def run_hog_threaded(ctx: Context, seconds: float) -> Figures:
    """Plain ``threading`` code, for every patched runtime and for OS threads."""
    out: dict[str, float] = {}
    return _hog_figures(beside_ticker([(hog, (seconds, out))]), out)


async def run_hog_async(ctx: Context, seconds: float) -> Figures:
    """The coroutine twin: the same hog, called from a task that never awaits."""
    out: dict[str, float] = {}
    return _hog_figures(await abeside_ticker([(hog, (seconds, out))]), out)


def blocker(sleep: Callable[[float], None], seconds: float, out: dict[str, float]) -> None:
    """Call the unpatched sleep; writes start and end."""
    start = monotonic()
    sleep(seconds)
    out.update(start=start, end=monotonic())


def _blocking_figures(ticks: Ticks, out: dict[str, float]) -> Figures:
    if "end" not in out:
        raise AssertionError("the blocking call did not return: its thread failed (traceback above)")
    start, end = out["start"], out["end"]
    return {
        **lateness_ms(lateness_during(ticks, start, end), "the blocking sleep"),
        "gap_ms": longest_gap(ticks, start, end) * 1000,
        "ticks": float(wakeups_during(ticks, start, end)),
        "slept_s": end - start,
    }


def run_blocking_threaded(ctx: Context, seconds: float) -> Figures:
    """Plain ``threading`` code around the runtime's unpatched ``time.sleep``."""
    out: dict[str, float] = {}
    return _blocking_figures(beside_ticker([(blocker, (ctx.original_sleep, seconds, out))]), out)


async def run_blocking_async(ctx: Context, seconds: float) -> Figures:
    """The coroutine twin: a task calls the blocking ``time.sleep``."""
    out: dict[str, float] = {}
    ticks = await abeside_ticker([(blocker, (ctx.original_sleep, seconds, out))])
    return _blocking_figures(ticks, out)


_STARVES = ("gevent, eventlet, asyncio and uvloop are cooperative: the hog never yields, "
            "so their ticker starves (0 ticks, one wake-up late by the whole hog).")

WORKLOADS = [
    Workload(
        name="hog_ticker",
        title="CPU hog (3 s) beside a 5 ms ticker",
        metrics=(
            Metric("p50_ms", "ticker lateness p50", "ms", higher_is_better=False, primary=True),
            Metric("p99_ms", "ticker lateness p99", "ms", higher_is_better=False,
                   target=Target("absolute", "<=", 1.5)),
            Metric("p99_ms", "ticker lateness p99 vs OS threads", "ms", higher_is_better=False,
                   target=Target("vs_threads", "<=", 0.5)),
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
            Metric("p50_ms", "ticker lateness p50", "ms", higher_is_better=False, primary=True),
            Metric("p99_ms", "ticker lateness p99", "ms", higher_is_better=False),
            Metric("max_ms", "ticker lateness max", "ms", higher_is_better=False,
                   target=Target("absolute", "<=", 5.0)),
            Metric("gap_ms", "longest ticker gap", "ms", higher_is_better=False),
            Metric("ticks", "ticks during the sleep", "ticks", higher_is_better=True),
            Metric("slept_s", "the blocking sleep took", "s", higher_is_better=False),
        ),
        run_threaded=run_blocking_threaded,
        run_async=run_blocking_async,
        full={"seconds": 1.0},
        quick={"seconds": 1.0},
        note="The cooperative runtimes freeze for the whole blocking call. The lateness is "
             "over the wake-ups due during the call; the gap (between two wake-ups) is the "
             "5 ms period plus the lateness, so it has no target of its own.",
    ),
]
