"""sleep(0) yields: 100 threads each call ``time.sleep(0)`` in a loop.

``time.sleep(0)`` is the idiomatic "let the others run" of blocking code: a green
runtime switches to the next ready thread, an OS thread releases the GIL. The
figure is the total number of ``sleep(0)`` calls per second across all threads.
The coroutine twin awaits ``asyncio.sleep(0)``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from time import perf_counter

from ._spec import Context, Figures, Metric, Target, Workload


def _yielder(count: int) -> None:
    for _ in range(count):
        time.sleep(0)


def _sleep0(threads: int, per_thread: int) -> float:
    """Returns the elapsed seconds for ``threads`` × ``per_thread`` yields."""
    workers = [threading.Thread(target=_yielder, args=(per_thread,)) for _ in range(threads)]
    start = perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return perf_counter() - start


def run_threaded(ctx: Context, threads: int, per_thread: int, warmup: int) -> Figures:
    """Plain blocking code, for every patched runtime and for OS threads."""
    _sleep0(threads, warmup)
    return {"rate": threads * per_thread / _sleep0(threads, per_thread)}


async def _ayielder(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def _asleep0(threads: int, per_thread: int) -> float:
    start = perf_counter()
    await asyncio.gather(*(_ayielder(per_thread) for _ in range(threads)))
    return perf_counter() - start


async def run_async(ctx: Context, threads: int, per_thread: int, warmup: int) -> Figures:
    """The coroutine twin, with ``asyncio.sleep(0)``."""
    await _asleep0(threads, warmup)
    return {"rate": threads * per_thread / await _asleep0(threads, per_thread)}


WORKLOADS = [
    Workload(
        name="sleep0",
        title="time.sleep(0) yields by 100 threads",
        metrics=(Metric("rate", "yields/s", "yields/s", higher_is_better=True,
                        target=Target("ratio", ">=", 1.3), primary=True),),
        run_threaded=run_threaded,
        run_async=run_async,
        full={"threads": 100, "per_thread": 3_000, "warmup": 200},
        quick={"threads": 100, "per_thread": 500, "warmup": 50},
    ),
]
