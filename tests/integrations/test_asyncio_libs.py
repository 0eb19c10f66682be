"""Real asyncio libraries beside green threads: aiohttp, httpx, asyncio streams, anyio.

Each test runs in a fresh interpreter after ``patch_all()`` (tests.util.run_python),
with an aiohttp server (handlers cancelled when their client goes) running in a
green thread of the same process (``SERVER`` below) on 127.0.0.1: its
``/hello/{name}`` answers after 50 ms, ``/slow`` after 30 s, and ``/relay/{name}``
calls ``/hello/{name}`` with blocking ``requests`` through
``greensched.asyncio.to_green``.
"""

from __future__ import annotations

import textwrap

from tests.util import run_python

SERVER = """
import greensched
greensched.patch_all()
import asyncio, threading, time
import greensched.asyncio as gasyncio
import requests
from aiohttp import web

_started = threading.Event()
_stop = threading.Event()
PORT = []

async def _hello(request):
    await asyncio.sleep(0.05)
    return web.Response(text="hello " + request.match_info["name"])

SLOW_CANCELLED = threading.Event()

async def _slow(request):
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:  # the client went away (handler_cancellation below)
        SLOW_CANCELLED.set()
        raise
    return web.Response(text="late")

def _blocking_get(url):
    with requests.Session() as session:
        session.trust_env = False
        return session.get(url, timeout=10).text

async def _relay(request):
    url = f"http://127.0.0.1:{PORT[0]}/hello/" + request.match_info["name"]
    text = await gasyncio.to_green(_blocking_get, url)
    return web.Response(text="relayed " + text)

async def _serve():
    app = web.Application()
    app.add_routes([web.get("/hello/{name}", _hello), web.get("/slow", _slow),
                    web.get("/relay/{name}", _relay)])
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=512)
    await site.start()
    PORT.append(runner.addresses[0][1])
    _started.set()
    await gasyncio.to_green(_stop.wait)  # a green Event, waited for without blocking the loop
    await runner.cleanup()

_server = threading.Thread(target=asyncio.run, args=(_serve(),), name="aiohttp server")
_server.start()
_started.wait()
BASE = f"http://127.0.0.1:{PORT[0]}"

def stop_server():
    _stop.set()
    _server.join(10)
    assert not _server.is_alive()
"""


def check(code: str, timeout: float = 120.0) -> None:
    proc = run_python(textwrap.dedent(SERVER) + textwrap.dedent(code), timeout=timeout)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")


def test_aiohttp_server_and_green_requests_clients_in_one_process() -> None:
    check("""
        def client(i):
            with requests.Session() as session:
                session.trust_env = False
                return [session.get(f"{BASE}/hello/{i}-{j}", timeout=10).text for j in range(5)]
        start = time.monotonic()
        threads = [greensched.spawn(client, i) for i in range(20)]
        assert [t.result() for t in threads] == [[f"hello {i}-{j}" for j in range(5)] for i in range(20)]
        # 100 requests of 50 ms each: concurrent, not one after another (5 s)
        assert time.monotonic() - start < 4.0
        # an aiohttp handler calling blocking requests through to_green
        assert _blocking_get(f"{BASE}/relay/x") == "relayed hello x"
        stop_server()
        print("ok")
    """)


def test_green_threads_share_an_aiohttp_client_session_through_run_coroutine() -> None:
    check("""
        import aiohttp

        async def open_session():
            return aiohttp.ClientSession(trust_env=False)
        session = gasyncio.run_coroutine(open_session())

        async def fetch(path):
            async with session.get(BASE + path) as response:
                response.raise_for_status()
                return await response.text()

        def worker(i):
            return [gasyncio.run_coroutine(fetch(f"/hello/{i}.{j}")) for j in range(3)]
        start = time.monotonic()
        threads = [greensched.spawn(worker, i) for i in range(30)]
        assert [t.result() for t in threads] == [[f"hello {i}.{j}" for j in range(3)] for i in range(30)]
        assert time.monotonic() - start < 4.0
        # the timeout cancels the request; the session keeps working
        try:
            gasyncio.run_coroutine(fetch("/slow"), timeout=0.2)
        except TimeoutError:
            pass
        else:
            raise AssertionError("no TimeoutError")
        assert SLOW_CANCELLED.wait(5)  # the request was dropped, the server saw it go
        try:
            gasyncio.run_coroutine(fetch("/missing"))
        except aiohttp.ClientResponseError as exc:
            assert exc.status == 404
        else:
            raise AssertionError("no 404")
        assert gasyncio.run_coroutine(fetch("/relay/y")) == "relayed hello y"
        gasyncio.run_coroutine(session.close())
        stop_server()
        print("ok")
    """)


def test_green_threads_call_an_httpx_async_client_through_run_coroutine() -> None:
    check("""
        import httpx

        async def open_client():
            return httpx.AsyncClient(base_url=BASE, trust_env=False, timeout=10)
        client = gasyncio.run_coroutine(open_client())

        async def get(path):
            response = await client.get(path)
            response.raise_for_status()
            return response.text

        start = time.monotonic()
        threads = [greensched.spawn(gasyncio.run_coroutine, get(f"/hello/h{i}")) for i in range(50)]
        assert [t.result() for t in threads] == [f"hello h{i}" for i in range(50)]
        assert time.monotonic() - start < 4.0
        try:
            gasyncio.run_coroutine(get("/slow"), timeout=0.2)
        except TimeoutError:
            pass
        else:
            raise AssertionError("no TimeoutError")
        assert SLOW_CANCELLED.wait(5)  # the request was dropped, the server saw it go
        # a green thread killed while it waits: the request is cancelled, the client lives on
        waiter = greensched.spawn(gasyncio.run_coroutine, get("/slow"))
        greensched.sleep(0.2)
        waiter.kill()
        try:
            gasyncio.run_coroutine(get("/missing"))
        except httpx.HTTPStatusError as exc:
            assert exc.response.status_code == 404
        else:
            raise AssertionError("no 404")
        assert gasyncio.run_coroutine(get("/hello/again")) == "hello again"
        gasyncio.run_coroutine(client.aclose())
        # and from a coroutine: to_green around blocking httpx (sync, green sockets)
        async def sync_inside():
            def blocking():
                with httpx.Client(trust_env=False) as sync_client:
                    return sync_client.get(BASE + "/hello/sync").text
            return await gasyncio.to_green(blocking)
        assert asyncio.run(sync_inside()) == "hello sync"
        stop_server()
        print("ok")
    """)


def test_asyncio_streams_between_loops_of_different_green_threads() -> None:
    check("""
        served = []
        async def handle(reader, writer):
            line = await reader.readline()
            served.append(line)
            writer.write(line.upper())
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        stream_port = []
        listening = threading.Event()
        done = threading.Event()
        async def stream_server():
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            stream_port.append(server.sockets[0].getsockname()[1])
            listening.set()
            await gasyncio.to_green(done.wait)
            server.close()
            await server.wait_closed()
        threading.Thread(target=asyncio.run, args=(stream_server(),)).start()
        listening.wait()

        async def client(i):
            reader, writer = await asyncio.open_connection("127.0.0.1", stream_port[0])
            writer.write(b"line %d\\n" % i)
            await writer.drain()
            answer = await reader.readline()
            writer.close()
            await writer.wait_closed()
            return answer
        clients = [greensched.spawn(asyncio.run, client(i)) for i in range(30)]
        assert [c.result() for c in clients] == [b"LINE %d\\n" % i for i in range(30)]
        assert len(served) == 30
        done.set()
        stop_server()
        print("ok")
    """)


def test_anyio_on_its_asyncio_backend_in_green_threads() -> None:
    check("""
        import anyio

        async def main(i):
            results = []
            async def fetch(j):
                await anyio.sleep(0.05)
                stream = await anyio.connect_tcp("127.0.0.1", PORT[0])
                async with stream:
                    await stream.send(b"GET /hello/a%d.%d HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n" % (i, j))
                    data = b""
                    try:
                        while True:
                            data += await stream.receive()
                    except anyio.EndOfStream:
                        pass
                results.append(data.rsplit(b"\\r\\n\\r\\n", 1)[1])
            async with anyio.create_task_group() as group:
                for j in range(3):
                    group.start_soon(fetch, j)
            # anyio's worker threads are threading.Threads: green under patch_all
            slept = await anyio.to_thread.run_sync(time.sleep, 0.05)
            with anyio.move_on_after(0.1) as scope:
                await gasyncio.to_green(greensched.sleep, 30)
            assert scope.cancelled_caught
            return sorted(results)

        start = time.monotonic()
        threads = [greensched.spawn(anyio.run, main, i, backend="asyncio") for i in range(10)]
        for i, t in enumerate(threads):
            assert t.result() == [b"hello a%d.%d" % (i, j) for j in range(3)], t.result()
        assert time.monotonic() - start < 4.0
        stop_server()
        print("ok")
    """)
