"""Timeouts, blocking modes and connect() of the green socket, side by side with the stdlib's.

Where it can, each test runs the same steps on a plain `socket.socket` and on the
green one and compares what they raise or return. Only loopback addresses are used:
a refused connection is a port nobody listens on, and a connection that never
completes is one to a listener whose backlog is full.
"""

from __future__ import annotations

import errno
import math
import socket as stdsocket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import greensched
from greensched import Event, spawn
from greensched._core._hub import get_hub
from greensched.net import socket as gsocket

LOCAL = ("127.0.0.1", 0)
KINDS = [stdsocket, gsocket]  # the stdlib module, then ours: same API


def outcome(fn: Callable[[], Any]) -> tuple[Any, ...]:
    """What ``fn()`` did, in a form that compares across the two socket classes."""
    try:
        return ("returned", fn())
    except Exception as exc:
        return ("raised", type(exc), exc.args)


def timed(fn: Callable[[], Any]) -> tuple[tuple[Any, ...], float]:
    start = time.monotonic()
    result = outcome(fn)
    return result, time.monotonic() - start


@pytest.fixture
def default_timeout() -> Iterator[Callable[[Any], None]]:
    saved = stdsocket.getdefaulttimeout()
    yield stdsocket.setdefaulttimeout
    stdsocket.setdefaulttimeout(saved)


def refused_address() -> tuple[str, int]:
    """A loopback port nobody listens on."""
    with stdsocket.socket() as s:
        s.bind(LOCAL)
        return s.getsockname()  # type: ignore[no-any-return]


@pytest.fixture
def full_backlog() -> Iterator[tuple[str, int]]:
    """A listener that never accepts and whose backlog is full: connect() never completes."""
    with stdsocket.socket() as server:
        server.bind(LOCAL)
        server.listen(0)
        fillers = []
        try:
            for _ in range(32):
                filler = stdsocket.socket()
                fillers.append(filler)
                filler.settimeout(0.2)
                try:
                    filler.connect(server.getsockname())
                except TimeoutError:
                    break
            else:
                pytest.skip("this kernel never lets the loopback backlog fill up")
            yield server.getsockname()
        finally:
            for filler in fillers:
                filler.close()


# -- settimeout / gettimeout / setblocking / getblocking -------------------------------------


@pytest.mark.parametrize("value", [None, 0, 0.0, 1, 2.5, 1e-10, True, -1, -0.5, "x", 1.5j,
                                   math.nan, math.inf, 10 ** 30])
def test_settimeout_matches_the_stdlib(value: Any) -> None:
    results = []
    for kind in KINDS:
        with kind.socket() as s:
            results.append((outcome(lambda: s.settimeout(value)), s.gettimeout(), s.timeout, s.getblocking()))
    assert results[0] == results[1]


@pytest.mark.parametrize("flag", [True, False, 0, 1, 2, None, "", "x", [], [0], 1.5])
def test_setblocking_matches_the_stdlib(flag: Any) -> None:
    results = []
    for kind in KINDS:
        with kind.socket() as s:
            s.settimeout(3)
            results.append((outcome(lambda: s.setblocking(flag)), s.gettimeout(), s.getblocking()))
    assert results[0] == results[1]


def test_timeout_calls_on_a_closed_socket_match_the_stdlib() -> None:
    results = []
    for kind in KINDS:
        s = kind.socket()
        s.close()
        results.append((outcome(lambda: s.settimeout(4)), s.gettimeout(),
                        outcome(lambda: s.setblocking(False)), s.gettimeout(), outcome(lambda: s.recv(1))))
    assert results[0] == results[1]
    assert results[1][0][1] is OSError and results[1][0][2][0] == errno.EBADF


def test_getdefaulttimeout_is_respected(default_timeout: Callable[[Any], None]) -> None:
    for value in [0.25, 0.0, None]:
        default_timeout(value)
        a, b = gsocket.socketpair()
        std = stdsocket.socket()
        with a, b, std, gsocket.socket() as plain:
            assert a.gettimeout() == b.gettimeout() == plain.gettimeout() == std.gettimeout() == value
    default_timeout(0.25)
    a, b = gsocket.socketpair()
    with a, b:
        result, elapsed = timed(lambda: a.recv(1))
    assert result == ("raised", TimeoutError, ("timed out",))
    assert 0.2 < elapsed < 3


@pytest.mark.parametrize("default", [None, 0.5])
@pytest.mark.parametrize("listener_timeout", [None, 0.0, 4.0])
def test_accepted_socket_gets_the_stdlib_timeout(
    default_timeout: Callable[[Any], None], default: Any, listener_timeout: Any,
) -> None:
    results = []
    for kind in KINDS:
        with kind.create_server(LOCAL) as server:
            default_timeout(default)
            server.settimeout(listener_timeout)
            with stdsocket.create_connection(server.getsockname(), timeout=5):
                conn, _ = server.accept()
                with conn:
                    results.append((conn.gettimeout(), conn.getblocking()))
            default_timeout(None)
    assert results[0] == results[1]


# -- timeouts: TimeoutError("timed out") after about the timeout --------------------------------


def pair(kind: Any) -> tuple[Any, Any]:
    return kind.socketpair()  # type: ignore[no-any-return]


@pytest.mark.parametrize("call", ["recv", "recv_into", "recvfrom", "recvmsg", "accept", "sendall", "send"])
def test_timeouts_match_the_stdlib(call: str) -> None:
    results = []
    for kind in KINDS:
        a, b = pair(kind)
        server = kind.create_server(LOCAL)
        with a, b, server:
            b.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_SNDBUF, 4096)
            if call == "send":
                while True:  # fill b's send buffer without blocking
                    try:
                        b.send(b"x" * 65536, stdsocket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
            for s in (b, server):
                s.settimeout(0.2)
            fn = {
                "recv": lambda: b.recv(10),
                "recv_into": lambda: b.recv_into(bytearray(10)),
                "recvfrom": lambda: b.recvfrom(10),
                "recvmsg": lambda: b.recvmsg(10),
                "accept": server.accept,
                "sendall": lambda: b.sendall(b"y" * 16 * 1024 * 1024),
                "send": lambda: b.send(b"z" * 65536),
            }[call]
            result, elapsed = timed(fn)
        results.append(result)
        assert 0.18 < elapsed < 3, (kind, elapsed)
    assert results[0] == results[1] == ("raised", TimeoutError, ("timed out",))


def test_sendall_deadline_covers_the_whole_call() -> None:
    """Every single wait is short (the reader drains a little every 20 ms), but the whole
    sendall takes longer than the timeout: TimeoutError, as CPython's sendall does."""
    a, b = gsocket.socketpair()
    stop = Event()

    def drain() -> None:
        while not stop.is_set():
            greensched.sleep(0.02)
            try:
                b.recv(64 * 1024, stdsocket.MSG_DONTWAIT)
            except BlockingIOError:
                pass

    with a, b:
        t = spawn(drain)
        a.settimeout(0.5)
        try:
            result, elapsed = timed(lambda: a.sendall(b"x" * 64 * 1024 * 1024))
        finally:
            stop.set()
            t.join()
    assert result == ("raised", TimeoutError, ("timed out",))
    assert 0.45 < elapsed < 3


def test_data_in_time_beats_the_timeout() -> None:
    a, b = gsocket.socketpair()
    with a, b:
        b.settimeout(10)
        writer = spawn(a.sendall, b"in time")
        assert b.recv(100) == b"in time"
        writer.join()


def test_a_ticker_runs_while_recv_waits_for_its_timeout() -> None:
    a, b = gsocket.socketpair()
    ticks = []
    stop = Event()

    def ticker() -> None:
        while not stop.is_set():
            greensched.sleep(0.005)
            ticks.append(1)

    with a, b:
        t = spawn(ticker)
        b.settimeout(0.3)
        with pytest.raises(TimeoutError):
            b.recv(1)
        stop.set()
        t.join()
    assert len(ticks) >= 10


# -- non-blocking mode: the stdlib's BlockingIOError ---------------------------------------------------


def test_non_blocking_mode_raises_blocking_io_error_like_the_stdlib() -> None:
    results = []
    for kind in KINDS:
        a, b = pair(kind)
        server = kind.create_server(LOCAL)
        with a, b, server, kind.socket() as c:
            for s in (a, b, server, c):
                s.setblocking(False)
            r = [outcome(lambda: b.recv(1)), outcome(lambda: b.recv_into(bytearray(1))),
                 outcome(server.accept), outcome(lambda: c.connect(server.getsockname()))]
            while outcome(lambda: a.send(b"x" * 65536))[0] == "returned":
                pass
            r.append(outcome(lambda: a.send(b"x")))
            r.append(outcome(lambda: a.sendall(b"x")))
        results.append(r)
    assert results[0] == results[1]
    assert results[1][0] == ("raised", BlockingIOError, (errno.EAGAIN, "Resource temporarily unavailable"))
    assert results[1][3][2][0] == errno.EINPROGRESS


@pytest.mark.parametrize("timeout", [None, 0.2])
def test_msg_dontwait_on_a_blocking_socket_matches_the_stdlib(timeout: Any) -> None:
    """A blocking socket given MSG_DONTWAIT raises at once; with a timeout, it waits."""
    dontwait = stdsocket.MSG_DONTWAIT
    results = []
    for kind in KINDS:
        a, b = pair(kind)
        with a, b:
            while outcome(lambda: a.send(b"x" * 65536, dontwait))[0] == "returned":
                pass
            a.settimeout(timeout)
            b.settimeout(timeout)
            r = [timed(lambda: a.recv(1, dontwait)), timed(lambda: a.recv_into(bytearray(1), flags=dontwait)),
                 timed(lambda: a.send(b"x", dontwait)), timed(lambda: a.sendall(b"x", dontwait))]
        results.append([result for result, _ in r])
        assert all((elapsed < 1) if timeout is None else (0.18 < elapsed < 3) for _, elapsed in r)
    assert results[0] == results[1]


def test_non_blocking_connect_ex_then_connect_completes() -> None:
    with gsocket.create_server(LOCAL) as server, gsocket.socket() as c:
        c.setblocking(False)
        assert c.connect_ex(server.getsockname()) in (0, errno.EINPROGRESS)
        get_hub().wait_writable(c.fileno(), 5)
        assert c.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_ERROR) == 0
        assert c.connect_ex(server.getsockname()) in (0, errno.EISCONN)  # 0 once: it completed
        assert c.connect_ex(server.getsockname()) == errno.EISCONN
        server.accept()[0].close()


# -- connect: refused, timed out -----------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [None, 2.0])
def test_connect_refused_matches_the_stdlib(timeout: Any) -> None:
    address = refused_address()
    results = []
    for kind in KINDS:
        with kind.socket() as s1, kind.socket() as s2:
            s1.settimeout(timeout)
            s2.settimeout(timeout)
            results.append((outcome(lambda: s1.connect(address)), s2.connect_ex(address)))
    assert results[0] == results[1]
    assert results[1][0] == ("raised", ConnectionRefusedError, (errno.ECONNREFUSED, "Connection refused"))
    assert results[1][1] == errno.ECONNREFUSED


def test_connect_timeout_matches_the_stdlib(full_backlog: tuple[str, int]) -> None:
    results = []
    for kind in KINDS:
        with kind.socket() as s1, kind.socket() as s2:
            s1.settimeout(0.3)
            s2.settimeout(0.3)
            connect, elapsed1 = timed(lambda: s1.connect(full_backlog))
            connect_ex, elapsed2 = timed(lambda: s2.connect_ex(full_backlog))
        assert 0.28 < elapsed1 < 3 and 0.28 < elapsed2 < 3
        results.append((connect, connect_ex))
    assert results[0] == results[1]
    assert results[1] == (("raised", TimeoutError, ("timed out",)), ("returned", errno.EAGAIN))


def test_a_ticker_runs_while_connect_waits(full_backlog: tuple[str, int]) -> None:
    ticks = []
    stop = Event()

    def ticker() -> None:
        while not stop.is_set():
            greensched.sleep(0.005)
            ticks.append(1)

    t = spawn(ticker)
    with gsocket.socket() as s, pytest.raises(TimeoutError):
        s.settimeout(0.3)
        s.connect(full_backlog)
    stop.set()
    t.join()
    assert len(ticks) >= 10
    assert get_hub()._netpoll.waiting == 0


def test_create_connection_timeout(full_backlog: tuple[str, int]) -> None:
    result, elapsed = timed(lambda: gsocket.create_connection(full_backlog, timeout=0.3))
    assert result == ("raised", TimeoutError, ("timed out",))
    assert 0.28 < elapsed < 3


def test_unix_connect_waits_for_room_in_a_full_backlog(tmp_path: Any) -> None:
    """A blocking AF_UNIX connect() to a full backlog waits until the server accepts."""
    path = str(tmp_path / "sock")
    with gsocket.socket(stdsocket.AF_UNIX) as server:
        server.bind(path)
        server.listen(0)
        queued = []
        try:
            while True:  # fill the backlog
                c = gsocket.socket(stdsocket.AF_UNIX)
                queued.append(c)
                c.setblocking(False)
                if c.connect_ex(path) != 0:
                    break
            waiting = Event()

            def connect_blocking() -> None:
                with gsocket.socket(stdsocket.AF_UNIX) as s:
                    waiting.set()
                    s.connect(path)

            t = spawn(connect_blocking)
            waiting.wait()
            greensched.sleep(0.05)
            assert not t.done()
            conns = [server.accept()[0] for _ in range(len(queued))]  # make room
            t.result(timeout=5)
            for conn in conns:
                conn.close()
            with gsocket.socket(stdsocket.AF_UNIX) as s:
                s.settimeout(0.5)  # with a timeout: the stdlib's BlockingIOError, at once
                for _ in range(len(queued) + 1):
                    s2 = gsocket.socket(stdsocket.AF_UNIX)
                    queued.append(s2)
                    s2.setblocking(False)
                    if s2.connect_ex(path) != 0:
                        break
                with pytest.raises(BlockingIOError):
                    s.connect(path)
        finally:
            for c in queued:
                c.close()


def test_real_os_threads_can_use_green_sockets() -> None:
    """Outside the main OS thread a green socket still blocks only its caller."""
    a, b = gsocket.socketpair()
    out: list[Any] = []

    def worker() -> None:
        b.settimeout(5)
        out.append(b.recv(10))

    with a, b:
        t = threading.Thread(target=worker)
        t.start()
        a.sendall(b"from main")
        t.join(10)
    assert out == [b"from main"]
