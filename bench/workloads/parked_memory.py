"""Memory per parked thread: RSS growth with 10,000 threads waiting on one Event.

After a warm-up (a few hundred threads parked and released, so lazily allocated
runtime structures exist), the resident set size is read from ``/proc/self/statm``;
then ``count`` threads are started, each waiting on the same ``threading.Event``;
once all are parked the RSS is read again. The figure is the growth divided by the
thread count, in KiB per thread (lower is better). It includes the
``threading.Thread`` object itself, the same on every thread-like runtime. The
coroutine twin parks tasks on an ``asyncio.Event``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time

from ._spec import Context, Figures, Metric, Target, Workload

_PAGE = os.sysconf("SC_PAGESIZE")


def rss_bytes() -> int:
    """The process's resident set size, from ``/proc/self/statm``."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


def _parker(parked: list[None], event: threading.Event) -> None:
    parked.append(None)
    event.wait()


def _park(count: int, measure: bool) -> float:
    """Park ``count`` threads on an Event; returns KiB of RSS growth per thread."""
    event = threading.Event()
    parked: list[None] = []
    gc.collect()
    before = rss_bytes()
    threads = [threading.Thread(target=_parker, args=(parked, event)) for _ in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while len(parked) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(parked)} of {count} threads parked in 120 s")
        time.sleep(0.01)
    time.sleep(0.05)  # let the last ones reach event.wait()
    gc.collect()
    after = rss_bytes() if measure else before
    event.set()
    for thread in threads:
        thread.join()
    return (after - before) / count / 1024


def run_threaded(ctx: Context, count: int, warmup: int) -> Figures:
    """Plain ``threading`` code, for every patched runtime and for OS threads."""
    _park(warmup, measure=False)
    return {"kib": _park(count, measure=True)}


async def _aparker(parked: list[None], event: asyncio.Event) -> None:
    parked.append(None)
    await event.wait()


async def _apark(count: int, measure: bool) -> float:
    event = asyncio.Event()
    parked: list[None] = []
    gc.collect()
    before = rss_bytes()
    tasks = [asyncio.create_task(_aparker(parked, event)) for _ in range(count)]
    while len(parked) < count:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    gc.collect()
    after = rss_bytes() if measure else before
    event.set()
    await asyncio.gather(*tasks)
    return (after - before) / count / 1024


async def run_async(ctx: Context, count: int, warmup: int) -> Figures:
    """The coroutine twin: tasks parked on an ``asyncio.Event``."""
    await _apark(warmup, measure=False)
    return {"kib": await _apark(count, measure=True)}


WORKLOADS = [
    Workload(
        name="parked_memory",
        title="memory per parked thread (10,000 waiting on an Event)",
        metrics=(Metric("kib", "KiB/thread (RSS)", "KiB", higher_is_better=False,
                        target=Target("ratio", "<=", 0.5), primary=True),),
        run_threaded=run_threaded,
        run_async=run_async,
        full={"count": 10_000, "warmup": 500},
        quick={"count": 2_000, "warmup": 200},
    ),
]
