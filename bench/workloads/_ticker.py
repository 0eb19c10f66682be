"""A 5 ms ticker and the statistics of its wake-ups, shared by the fairness workloads.

The ticker wants to wake every ``interval`` seconds (``time.sleep`` after
patching, ``asyncio.sleep`` for the coroutine twin) and records, per wake-up, when
it was due and when it actually woke. A scheduler that lets something else hold the
CPU makes the wake-ups late, or stops them altogether. `beside_ticker` runs one or
more pieces of work beside it, each in a thread of its own (`abeside_ticker`: in a
task that never awaits), one after the other.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from ._spec import Figures

INTERVAL = 0.005  # the ticker's period
LEAD_IN = 0.2  # seconds of ticking before the first piece of work starts
TAIL = 0.05  # seconds of ticking after each piece of work ends

#: A piece of work to run beside the ticker: a function and its arguments.
Job = tuple[Callable[..., None], tuple[Any, ...]]


@dataclass
class Ticks:
    """The ticker's record: one (due, woke) pair per wake-up, in monotonic seconds."""

    records: list[tuple[float, float]] = field(default_factory=list)
    stop: bool = False  # set by the main thread to end the ticker


def ticker(ticks: Ticks, interval: float) -> None:
    """Thread body: sleep ``interval`` again and again until ``ticks.stop``."""
    while not ticks.stop:
        due = monotonic() + interval
        time.sleep(interval)
        ticks.records.append((due, monotonic()))


async def aticker(ticks: Ticks, interval: float) -> None:
    """Coroutine twin of `ticker`."""
    while not ticks.stop:
        due = monotonic() + interval
        await asyncio.sleep(interval)
        ticks.records.append((due, monotonic()))


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (NaN for an empty list)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = math.ceil(pct / 100.0 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def lateness_during(ticks: Ticks, start: float, end: float) -> list[float]:
    """Seconds late of every wake-up that fell due inside [start, end].

    A starved ticker's wake-up that was due during the window but came only after
    it is included: that is the lateness the starvation caused. So is the wake-up
    that was already due when the window opened but had not happened yet: on a
    cooperative runtime the work may start just after the ticker's timer expired,
    and that wake-up is then the one the work delays (otherwise no wake-up at all
    would fall due inside the window).
    """
    return [max(woke - due, 0.0) for due, woke in ticks.records
            if start <= due <= end or due < start <= woke]


def lateness_ms(late: list[float], what: str = "the window") -> Figures:
    """``p50_ms``, ``p99_ms`` and ``max_ms`` of lateness in seconds; raises if there is none."""
    if not late:
        raise AssertionError(f"no wake-up fell due during {what}")
    return {"p50_ms": percentile(late, 50) * 1000, "p99_ms": percentile(late, 99) * 1000,
            "max_ms": max(late) * 1000}


def wakeups_during(ticks: Ticks, start: float, end: float) -> int:
    """How many times the ticker actually woke inside [start, end]."""
    return sum(1 for _, woke in ticks.records if start <= woke <= end)


def longest_gap(ticks: Ticks, start: float, end: float) -> float:
    """The longest time between two consecutive wake-ups around [start, end].

    From the last wake-up before ``start`` to the first one after ``end`` (or ``end``
    itself if the ticker never woke after it). A healthy 5 ms ticker shows ~5 ms.
    """
    wakes = sorted(woke for _, woke in ticks.records)
    before = [w for w in wakes if w <= start]
    inside = [w for w in wakes if start < w < end]
    after = [w for w in wakes if w >= end]
    points = [before[-1] if before else start, *inside, after[0] if after else end]
    return max(b - a for a, b in zip(points, points[1:], strict=False))


def beside_ticker(jobs: Sequence[Job], interval: float = INTERVAL) -> Ticks:
    """Plain ``threading`` code: start the ticker, and after a lead-in run each job in a
    thread of its own, one after the other, with a little ticking after each; stop it."""
    ticks = Ticks()
    ticking = threading.Thread(target=ticker, args=(ticks, interval))
    ticking.start()
    time.sleep(LEAD_IN)
    for work, args in jobs:
        working = threading.Thread(target=work, args=args)
        working.start()
        working.join()
        time.sleep(TAIL)
    ticks.stop = True
    ticking.join()
    return ticks


async def abeside_ticker(jobs: Sequence[Job], interval: float = INTERVAL) -> Ticks:
    """The coroutine twin of `beside_ticker`: each job runs in a task that never awaits."""
    ticks = Ticks()
    ticking = asyncio.create_task(aticker(ticks, interval))
    await asyncio.sleep(LEAD_IN)
    for work, args in jobs:

        async def awork(work: Callable[..., None] = work, args: tuple[Any, ...] = args) -> None:
            work(*args)

        await asyncio.create_task(awork())
        await asyncio.sleep(TAIL)
    ticks.stop = True
    await ticking
    return ticks
