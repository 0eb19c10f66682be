"""Faults on real loopback connections: a socket closed under a waiter, a peer that
resets mid-transfer, a server that accepts and never answers.

tests/io/test_socket.py covers a close under a parked recv, accept and sendall.
Here: the same for waits with a timeout, recv_into and a connect in progress; resets
compared with plain blocking stdlib sockets run in an OS thread; and timeouts against a
silent server, one client and a hundred at once.
"""

from __future__ import annotations

import errno
import socket as stdsocket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import greensched
from greensched import spawn
from greensched._core._hub import get_hub
from greensched.net import socket as gsocket

LOCAL = ("127.0.0.1", 0)


def wait_parked(thread: greensched.GreenThread) -> None:
    deadline = time.monotonic() + 10
    while thread.state != "PARKED":
        assert time.monotonic() < deadline, f"{thread} never parked"
        greensched.sleep(0)


# -- a socket closed while another green thread waits on it ----------------------------------------


@pytest.fixture
def silent_server() -> Iterator[tuple[str, int]]:
    """A plain server in an OS thread that accepts every connection and never sends
    or reads a byte (in an OS thread, so the only green waits are the clients')."""
    listener = stdsocket.create_server(LOCAL, backlog=512)
    listener.settimeout(0.05)
    kept: list[stdsocket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                kept.append(listener.accept()[0])
            except TimeoutError:
                pass

    acceptor = threading.Thread(target=serve, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()
        for conn in kept:
            conn.close()


def full_backlog_address(closers: list[Any]) -> tuple[str, int]:
    server = stdsocket.socket()
    closers.append(server)
    server.bind(LOCAL)
    server.listen(0)
    for _ in range(32):
        filler = stdsocket.socket()
        closers.append(filler)
        filler.settimeout(0.2)
        try:
            filler.connect(server.getsockname())
        except TimeoutError:
            return server.getsockname()  # type: ignore[no-any-return]
    pytest.skip("this kernel never lets the loopback backlog fill up")


@pytest.mark.parametrize("how", ["recv-with-timeout", "recv_into", "sendall-with-timeout", "connect"])
def test_close_under_a_waiter_raises_oserror_promptly(how: str, silent_server: tuple[str, int]) -> None:
    closers: list[Any] = []
    try:
        if how == "connect":
            address = full_backlog_address(closers)
            sock = gsocket.socket()

            def call() -> Any:
                return sock.connect(address)
        else:
            sock = gsocket.create_connection(silent_server, timeout=60 if "timeout" in how else None)
            if how == "sendall-with-timeout":
                def call() -> Any:
                    return sock.sendall(b"x" * (64 << 20))  # nobody reads: parks
            elif how == "recv_into":
                def call() -> Any:
                    return sock.recv_into(bytearray(100))
            else:
                def call() -> Any:
                    return sock.recv(100)
        closers.append(sock)
        waiter = spawn(call)
        wait_parked(waiter)
        start = time.monotonic()
        sock.close()
        with pytest.raises(OSError) as info:
            waiter.result(timeout=5)
        assert time.monotonic() - start < 1.0  # promptly, not at the 60 s timeout
        assert info.value.errno == errno.EBADF
        assert get_hub()._netpoll.waiting == 0
    finally:
        for c in closers:
            c.close()


# -- a peer that resets the connection mid-transfer -------------------------------------------------


def reset(conn: Any) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    conn.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def resetting_peer(mode: str) -> tuple[tuple[str, int], threading.Thread]:
    """A plain blocking peer in an OS thread that resets its one connection mid-transfer.

    ``sending``: it sends 128 KiB, then resets once the client says it read some.
    ``receiving``: it reads 64 KiB of what the client sends, then resets.
    """
    listener = stdsocket.create_server(LOCAL)

    def run() -> None:
        with listener:
            conn, _ = listener.accept()
        if mode == "sending":
            conn.sendall(b"s" * (128 * 1024))
            conn.recv(1)  # the client has read part of it
        else:
            got = 0
            while got < 64 * 1024:
                got += len(conn.recv(65536))
        reset(conn)

    peer = threading.Thread(target=run, daemon=True)
    peer.start()
    return listener.getsockname(), peer


def reset_outcome(kind: Any, mode: str) -> tuple[type, type, int]:
    """(what the transfer raised, what a send after it raised, bytes read) for ``kind``."""
    address, peer = resetting_peer(mode)
    with kind.create_connection(address, timeout=30) as sock:
        got = 0
        try:
            if mode == "sending":
                got += len(sock.recv(65536))
                sock.sendall(b"!")
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise AssertionError("EOF instead of a reset")
                    got += len(chunk)
            else:
                sock.sendall(b"r" * (64 << 20))  # far more than the peer reads
                raise AssertionError("sendall finished despite the reset")
        except OSError as exc:
            first: type = type(exc)
        try:
            sock.send(b"after")
            then: type = type(None)
        except OSError as exc:
            then = type(exc)
    peer.join(10)
    return first, then, got


@pytest.mark.parametrize("mode", ["sending", "receiving"])
def test_a_peer_reset_mid_transfer_raises_what_blocking_sockets_raise(mode: str) -> None:
    plain = reset_outcome(stdsocket, mode)  # the stdlib in this OS thread: really blocking
    green = spawn(reset_outcome, gsocket, mode).result(timeout=30)
    if mode == "sending":
        # recv sees the reset as ECONNRESET; a send after it, EPIPE: both exactly the stdlib's.
        assert plain[:2] == green[:2] == (ConnectionResetError, BrokenPipeError), (plain, green)
        assert 0 < green[2] <= 128 * 1024
    else:
        # sendall sees ECONNRESET or EPIPE depending on when the RST lands (the stdlib too).
        allowed = (ConnectionResetError, BrokenPipeError)
        assert plain[0] in allowed and green[0] in allowed, (plain, green)
        assert plain[1] is BrokenPipeError and green[1] is BrokenPipeError, (plain, green)
    assert get_hub()._netpoll.waiting == 0


# -- a server that accepts and never answers --------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    try:
        fn()
        outcome: Any = "returned"
    except Exception as exc:
        outcome = exc
    return outcome, time.monotonic() - start


@pytest.mark.parametrize("call", ["recv", "makefile-readline", "sendall", "create_connection-recv"])
def test_a_silent_server_trips_the_client_timeout_on_time(call: str, silent_server: tuple[str, int]) -> None:
    timeout = 0.4
    if call == "create_connection-recv":
        sock = gsocket.create_connection(silent_server, timeout=timeout)
    else:
        sock = gsocket.create_connection(silent_server)
        sock.settimeout(timeout)
    with sock:
        fn: Callable[[], Any] = {
            "recv": lambda: sock.recv(10),
            "create_connection-recv": lambda: sock.recv(10),
            "makefile-readline": lambda: sock.makefile("rb").readline(),
            "sendall": lambda: sock.sendall(b"x" * (64 << 20)),  # nobody reads
        }[call]
        outcome, elapsed = timed(fn)
    assert isinstance(outcome, TimeoutError) and outcome.args == ("timed out",), outcome
    assert timeout * 0.95 <= elapsed < timeout + 1.5, elapsed
    assert get_hub()._netpoll.waiting == 0


def test_a_hundred_clients_of_a_silent_server_all_time_out_on_time(silent_server: tuple[str, int]) -> None:
    """Staggered timeouts from 0.3 s to 0.8 s: each client times out after its own."""

    def client(i: int) -> tuple[Any, float, float]:
        timeout = 0.3 + (i % 11) * 0.05
        with gsocket.create_connection(silent_server, timeout=timeout) as sock:
            outcome, elapsed = timed(lambda: sock.recv(10))
        return outcome, elapsed, timeout

    results = [t.result(timeout=30) for t in [spawn(client, i) for i in range(100)]]
    for outcome, elapsed, timeout in results:
        assert isinstance(outcome, TimeoutError), outcome
        assert timeout * 0.95 <= elapsed < timeout + 1.5, (elapsed, timeout)
    assert get_hub()._netpoll.waiting == 0
