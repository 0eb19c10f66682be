"""TCP echo over loopback: 200 concurrent connections, every byte verified.

An echo server (one thread accepting, one thread per connection doing
``recv``/``sendall``) and ``connections`` client threads run in the same process.
Each client sends ``messages`` messages of ``size`` bytes, one at a time, reads
the echo back in full and compares it byte for byte with what it sent (each
message's content differs per connection and per message). The figure is the
payload echoed per second, in MB/s (10^6 bytes, counted once per round trip),
from the first connect to the last client's end. The coroutine twin uses
``asyncio.start_server`` and ``open_connection`` streams.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from time import perf_counter

from ._spec import Context, Figures, Metric, Target, Workload

_ROTATIONS = 251  # a prime: consecutive messages of one connection all differ


def _payloads(connections: int, size: int) -> list[bytes]:
    """A random base buffer per connection; message i is a window into it."""
    return [os.urandom(size + _ROTATIONS) for _ in range(connections)]


def _message(base: bytes, i: int, size: int) -> bytes:
    offset = i % _ROTATIONS
    return base[offset:offset + size]


def _handler(conn: socket.socket) -> None:
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)


def _acceptor(server: socket.socket, connections: int) -> None:
    for _ in range(connections):
        conn, _ = server.accept()
        threading.Thread(target=_handler, args=(conn,), daemon=True).start()


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError(f"echo server closed after {len(buf)} of {size} bytes")
        buf += chunk
    return bytes(buf)


def _client(address: tuple[str, int], base: bytes, messages: int, size: int,
            errors: list[str]) -> None:
    try:
        with socket.create_connection(address) as sock:
            for i in range(messages):
                message = _message(base, i, size)
                sock.sendall(message)
                if _recv_exact(sock, size) != message:
                    errors.append(f"message {i}: echoed bytes differ")
                    return
    except Exception as exc:  # reported by the main thread, which fails the run
        errors.append(f"{type(exc).__name__}: {exc}")


def _echo(connections: int, messages: int, size: int) -> float:
    """One full echo run; returns elapsed seconds, raises if any byte was wrong."""
    bases = _payloads(connections, size)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(1024)
    address = server.getsockname()
    errors: list[str] = []
    acceptor = threading.Thread(target=_acceptor, args=(server, connections), daemon=True)
    acceptor.start()
    clients = [threading.Thread(target=_client, args=(address, base, messages, size, errors))
               for base in bases]
    start = perf_counter()
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    elapsed = perf_counter() - start
    acceptor.join()
    server.close()
    if errors:
        raise AssertionError(f"{len(errors)} client(s) failed; first: {errors[0]}")
    return elapsed


def run_threaded(ctx: Context, connections: int, messages: int, size: int,
                 warmup: int) -> Figures:
    """Plain blocking sockets, for every patched runtime and for OS threads."""
    _echo(connections, warmup, size)
    elapsed = _echo(connections, messages, size)
    return {"mbps": connections * messages * size / elapsed / 1e6}


async def _ahandler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def _aclient(address: tuple[str, int], base: bytes, messages: int, size: int) -> None:
    reader, writer = await asyncio.open_connection(*address)
    try:
        for i in range(messages):
            message = _message(base, i, size)
            writer.write(message)
            await writer.drain()
            if await reader.readexactly(size) != message:
                raise AssertionError(f"message {i}: echoed bytes differ")
    finally:
        writer.close()
        await writer.wait_closed()


async def _aecho(connections: int, messages: int, size: int) -> float:
    bases = _payloads(connections, size)
    server = await asyncio.start_server(_ahandler, "127.0.0.1", 0, backlog=1024)
    address = server.sockets[0].getsockname()
    start = perf_counter()
    await asyncio.gather(*(_aclient(address, base, messages, size) for base in bases))
    elapsed = perf_counter() - start
    server.close()
    await server.wait_closed()
    return elapsed


async def run_async(ctx: Context, connections: int, messages: int, size: int,
                    warmup: int) -> Figures:
    """The coroutine twin, with asyncio streams."""
    await _aecho(connections, warmup, size)
    elapsed = await _aecho(connections, messages, size)
    return {"mbps": connections * messages * size / elapsed / 1e6}


WORKLOADS = [
    Workload(
        name="tcp_echo",
        title="TCP echo, 200 connections, 4 KiB messages, verified",
        metrics=(Metric("mbps", "MB/s echoed", "MB/s", higher_is_better=True,
                        target=Target("ratio", ">=", 1.0), primary=True),),
        run_threaded=run_threaded,
        run_async=run_async,
        full={"connections": 200, "messages": 200, "size": 4096, "warmup": 10},
        quick={"connections": 200, "messages": 20, "size": 4096, "warmup": 2},
    ),
]
