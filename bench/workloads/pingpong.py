"""Queue ping-pong: two threads pass an item back and forth through two queues.

The main thread puts ``i`` on one ``queue.Queue`` and waits for it on another; the
partner thread echoes it. Each round trip therefore costs two puts, two gets and
two thread switches; the figure is round trips per second. The coroutine twin uses
``asyncio.Queue``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from time import perf_counter

from ._spec import Context, Figures, Metric, Target, Workload


def _ponger(inbox: queue.Queue, outbox: queue.Queue) -> None:
    while True:
        item = inbox.get()
        if item is None:
            return
        outbox.put(item)


def _pingpong(rounds: int) -> float:
    """``rounds`` round trips; returns the elapsed seconds."""
    to_partner: queue.Queue = queue.Queue()
    to_main: queue.Queue = queue.Queue()
    partner = threading.Thread(target=_ponger, args=(to_partner, to_main))
    partner.start()
    start = perf_counter()
    for i in range(1, rounds + 1):
        to_partner.put(i)
        if to_main.get() != i:
            raise AssertionError("ping-pong item out of order")
    elapsed = perf_counter() - start
    to_partner.put(None)
    partner.join()
    return elapsed


def run_threaded(ctx: Context, rounds: int, warmup: int) -> Figures:
    """Plain ``threading``/``queue`` code, for every patched runtime and for OS threads."""
    _pingpong(warmup)
    return {"rate": rounds / _pingpong(rounds)}


async def _aponger(inbox: asyncio.Queue, outbox: asyncio.Queue) -> None:
    while True:
        item = await inbox.get()
        if item is None:
            return
        await outbox.put(item)


async def _apingpong(rounds: int) -> float:
    to_partner: asyncio.Queue = asyncio.Queue()
    to_main: asyncio.Queue = asyncio.Queue()
    partner = asyncio.create_task(_aponger(to_partner, to_main))
    start = perf_counter()
    for i in range(1, rounds + 1):
        await to_partner.put(i)
        if await to_main.get() != i:
            raise AssertionError("ping-pong item out of order")
    elapsed = perf_counter() - start
    await to_partner.put(None)
    await partner
    return elapsed


async def run_async(ctx: Context, rounds: int, warmup: int) -> Figures:
    """The coroutine twin, with ``asyncio.Queue``."""
    await _apingpong(warmup)
    return {"rate": rounds / await _apingpong(rounds)}


WORKLOADS = [
    Workload(
        name="queue_pingpong",
        title="queue ping-pong between two threads (queue.Queue)",
        metrics=(Metric("rate", "round trips/s", "round trips/s", higher_is_better=True,
                        target=Target("ratio", ">=", 1.0), primary=True),),
        run_threaded=run_threaded,
        run_async=run_async,
        full={"rounds": 100_000, "warmup": 5_000},
        quick={"rounds": 10_000, "warmup": 1_000},
    ),
]
