"""spawn+join: start many short threads, then join them, in batches.

Each thread appends one item to a shared list and ends. The main thread starts a
batch of ``batch`` threads with ``threading.Thread(...).start()``, joins them all,
and repeats until ``total`` threads have run; the figure is threads per second
(start to last join). The coroutine twin does the same with ``create_task`` and
``gather``.
"""

from __future__ import annotations

import asyncio
import threading
from time import perf_counter

from ._spec import Context, Figures, Metric, Target, Workload


def _work(done: list[None]) -> None:
    """The thread body: record that it ran (``list.append`` is atomic)."""
    done.append(None)


def _spawn_join(total: int, batch: int) -> float:
    """Run ``total`` threads in batches; returns the elapsed seconds."""
    done: list[None] = []
    start = perf_counter()
    for _ in range(total // batch):
        threads = [threading.Thread(target=_work, args=(done,)) for _ in range(batch)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    elapsed = perf_counter() - start
    if len(done) != total // batch * batch:
        raise AssertionError(f"{len(done)} of {total} threads ran")
    return elapsed


def run_threaded(ctx: Context, total: int, batch: int, warmup: int) -> Figures:
    """Plain ``threading`` code, for every patched runtime and for OS threads."""
    _spawn_join(warmup, min(batch, warmup))
    elapsed = _spawn_join(total, batch)
    return {"rate": total / elapsed}


async def _awork(done: list[None]) -> None:
    done.append(None)


async def _aspawn_join(total: int, batch: int) -> float:
    done: list[None] = []
    start = perf_counter()
    for _ in range(total // batch):
        tasks = [asyncio.create_task(_awork(done)) for _ in range(batch)]
        await asyncio.gather(*tasks)
    elapsed = perf_counter() - start
    if len(done) != total // batch * batch:
        raise AssertionError(f"{len(done)} of {total} tasks ran")
    return elapsed


async def run_async(ctx: Context, total: int, batch: int, warmup: int) -> Figures:
    """The coroutine twin: tasks instead of threads."""
    await _aspawn_join(warmup, min(batch, warmup))
    elapsed = await _aspawn_join(total, batch)
    return {"rate": total / elapsed}


WORKLOADS = [
    Workload(
        name="spawn_join",
        title="spawn+join 100,000 threads (batches of 1,000)",
        metrics=(Metric("rate", "threads/s", "threads/s", higher_is_better=True,
                        target=Target("ratio", ">=", 3.0), primary=True),),
        run_threaded=run_threaded,
        run_async=run_async,
        full={"total": 100_000, "batch": 1_000, "warmup": 2_000},
        quick={"total": 10_000, "batch": 1_000, "warmup": 1_000},
    ),
]
