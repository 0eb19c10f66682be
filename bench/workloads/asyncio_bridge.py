"""The asyncio bridges, both directions: round trips per second of a no-op call.

* coroutine -> blocking code: ``await greensched.asyncio.to_green(noop)`` against
  ``await asyncio.to_thread(noop)``;
* blocking code -> coroutine: ``greensched.asyncio.run_coroutine(noop())`` from a
  green thread against ``asyncio.run_coroutine_threadsafe(noop(), loop).result()``
  from an OS thread, the loop running in another OS thread.

Each call is awaited (or waited for) before the next one starts: the figure is the
latency of one hop and back, the cost a program pays per call.

And issue 17's case, ``fifty_runs``: 50 threads each call ``asyncio.run(main())``
at once, where ``main`` awaits ``asyncio.sleep(0.5)`` and one
``asyncio.open_connection`` round trip to an echo server in the same process (a
thread per connection, listen backlog 512), beside a ticker thread that sleeps
10 ms at a time: the wall time of the 50 runs and the ticker's longest gap. Green
threads (after ``patch_all()``) against OS threads. ``measure(side)``
runs in a fresh process (see ``bench/asyncio_bridge.py``): ``"green"`` after
``greensched.patch_all()``, ``"threads"`` without greensched.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from time import perf_counter
from typing import Any

__all__ = ["measure", "fifty_runs", "SIZES"]

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


def _echo_server() -> int:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    # Larger than the burst: 50 connects in one pass of the hub overflow a small
    # backlog, and the kernel retries a dropped SYN after 1 s (a listen(5) server
    # made these 50 runs take 3.2 s instead of 0.55 s here).
    server.listen(512)

    def handle(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def serve() -> None:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return int(server.getsockname()[1])


def fifty_runs(runs: int = 50) -> dict[str, float]:
    """The issue's case: ``runs`` threads each ``asyncio.run(main())`` at once, and a ticker."""
    port = _echo_server()

    async def main(i: int) -> bytes:
        await asyncio.sleep(0.5)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping %d" % i)
        await writer.drain()
        data = await reader.readexactly(len(b"ping %d" % i))
        writer.close()
        await writer.wait_closed()
        return data

    stop = threading.Event()
    gaps: list[float] = []

    def ticker() -> None:
        last = time.monotonic()
        while not stop.is_set():
            time.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = threading.Thread(target=ticker)
    tick.start()
    results: dict[int, bytes] = {}

    def one(i: int) -> None:
        results[i] = asyncio.run(main(i))

    start = perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = perf_counter() - start
    stop.set()
    tick.join()
    if results != {i: b"ping %d" % i for i in range(runs)}:
        raise AssertionError(f"only {len(results)} of {runs} runs answered right")
    return {"fifty_runs_s": elapsed, "fifty_runs_max_gap_ms": max(gaps) * 1000.0}


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
    out.update(fifty_runs())
    return out
