"""The asyncio bridges, both directions: round trips per second of a no-op call.

* coroutine -> blocking code: ``await greensched.asyncio.to_green(noop)`` against
  ``await asyncio.to_thread(noop)``;
* blocking code -> coroutine: ``greensched.asyncio.run_coroutine(noop())`` from a
  green thread against ``asyncio.run_coroutine_threadsafe(noop(), loop).result()``
  from an OS thread, the loop running in another OS thread.

Each call is awaited (or waited for) before the next one starts: the figure is the
latency of one hop and back, the cost a program pays per call. ``measure(side)``
runs in a fresh process (see ``bench/asyncio_bridge.py``): ``"green"`` after
``greensched.patch_all()``, ``"threads"`` without greensched.
"""

from __future__ import annotations

import asyncio
import threading
from time import perf_counter
from typing import Any, Callable

__all__ = ["measure", "SIZES"]

#: Calls per measurement (full, quick); each side does a tenth of it as warm-up.
SIZES = {"to_green": 20_000, "to_thread": 5_000, "run_coroutine": 20_000,
         "run_coroutine_threadsafe": 5_000}


def _noop() -> None:
    return None


async def _anoop() -> None:
    return None


async def _await_calls(hop: Callable[[Callable[[], None]], Any], calls: int) -> float:
    start = perf_counter()
    for _ in range(calls):
        await hop(_noop)
    return perf_counter() - start


def _time_coroutine_calls(hop: Callable[[Any], Any], calls: int) -> float:
    start = perf_counter()
    for _ in range(calls):
        hop(_anoop())
    return perf_counter() - start


def measure(side: str, scale: float = 1.0) -> dict[str, float]:
    """Round trips per second of both bridges on one side ("green" or "threads")."""
    sizes = {k: max(int(v * scale), 10) for k, v in SIZES.items()}
    out: dict[str, float] = {}
    if side == "green":
        import greensched
        import greensched.asyncio as gasyncio

        async def down() -> float:
            await _await_calls(gasyncio.to_green, sizes["to_green"] // 10)
            return await _await_calls(gasyncio.to_green, sizes["to_green"])

        out["to_green"] = sizes["to_green"] / asyncio.run(down())

        def up() -> float:
            _time_coroutine_calls(gasyncio.run_coroutine, sizes["run_coroutine"] // 10)
            return _time_coroutine_calls(gasyncio.run_coroutine, sizes["run_coroutine"])

        out["run_coroutine"] = sizes["run_coroutine"] / greensched.spawn(up).result()
    elif side == "threads":
        async def down_threads() -> float:
            await _await_calls(asyncio.to_thread, sizes["to_thread"] // 10)
            return await _await_calls(asyncio.to_thread, sizes["to_thread"])

        out["to_thread"] = sizes["to_thread"] / asyncio.run(down_threads())

        loop = asyncio.new_event_loop()
        runner = threading.Thread(target=loop.run_forever, daemon=True)
        runner.start()

        def hop(coro: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(coro, loop).result()

        _time_coroutine_calls(hop, sizes["run_coroutine_threadsafe"] // 10)
        seconds = _time_coroutine_calls(hop, sizes["run_coroutine_threadsafe"])
        out["run_coroutine_threadsafe"] = sizes["run_coroutine_threadsafe"] / seconds
        loop.call_soon_threadsafe(loop.stop)
        runner.join()
        loop.close()
    else:
        raise ValueError(f"side must be 'green' or 'threads', not {side!r}")
    return out
