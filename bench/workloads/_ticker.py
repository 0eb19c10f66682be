"""A 5 ms ticker and the statistics of its wake-ups, shared by the fairness workloads.

The ticker wants to wake every ``interval`` seconds (``time.sleep`` after
patching, ``asyncio.sleep`` for the coroutine twin) and records, per wake-up, when
it was due and when it actually woke. A scheduler that lets something else hold the
CPU makes the wake-ups late, or stops them altogether.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from time import monotonic


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
    it is included: that is the lateness the starvation caused.
    """
    return [max(woke - due, 0.0) for due, woke in ticks.records if start <= due <= end]


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
