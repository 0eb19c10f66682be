"""The green socket against real loopback sockets: data paths, concurrency, closing, files.

Timeouts and blocking modes, compared with the stdlib's own socket, are in
test_socket_timeouts.py.
"""

from __future__ import annotations

import array
import errno
import hashlib
import inspect
import io
import os
import socket as stdsocket
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import greensched
from greensched import Event, spawn
from greensched._core._hub import get_hub
from greensched.net import socket as gsocket

LOCAL = ("127.0.0.1", 0)


@pytest.fixture
def listener() -> Iterator[gsocket.socket]:
    with gsocket.create_server(LOCAL, backlog=256) as sock:
        yield sock


def connected(listener: gsocket.socket, timeout: Any = None) -> tuple[gsocket.socket, gsocket.socket]:
    client = gsocket.create_connection(listener.getsockname(), timeout=timeout)
    server, _ = listener.accept()
    return client, server


def wait_parked(thread: greensched.GreenThread) -> None:
    """Yield until ``thread`` is parked (e.g. in recv)."""
    deadline = time.monotonic() + 10
    while thread.state != "PARKED":
        assert time.monotonic() < deadline, f"{thread} never parked"
        greensched.sleep(0)


def recv_all(sock: Any) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# -- data paths and concurrency -------------------------------------------------------------------


def test_echo_server_with_200_concurrent_clients(listener: gsocket.socket) -> None:
    """200 green clients each send 64 KiB and check the echo's checksum."""
    n_clients, size = 200, 64 * 1024
    handlers: list[greensched.GreenThread] = []

    def echo(conn: gsocket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            handlers.append(spawn(echo, conn))

    def client(i: int) -> bool:
        payload = hashlib.sha256(str(i).encode()).digest() * (size // 32)
        with gsocket.create_connection(listener.getsockname(), timeout=60) as sock:

            def write() -> None:
                sock.sendall(payload)
                sock.shutdown(stdsocket.SHUT_WR)

            writer = spawn(write)  # one reader and one writer share the socket
            echoed = recv_all(sock)
            writer.result()
        return hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()

    acceptor = spawn(serve)
    clients = [spawn(client, i) for i in range(n_clients)]
    results = [t.result() for t in clients]
    wait_parked(acceptor)
    listener.close()  # wakes the parked accept() with EBADF
    acceptor.result(timeout=5)
    for handler in handlers:
        handler.result(timeout=5)
    assert results == [True] * n_clients and len(handlers) == n_clients


def test_other_green_threads_run_while_one_waits_in_recv() -> None:
    a, b = gsocket.socketpair()
    ticks: list[int] = []
    ticked = Event()

    def ticker() -> None:
        for i in range(10):
            greensched.sleep(0.001)
            ticks.append(i)
        ticked.set()
        b.sendall(b"done")

    with a, b:
        t = spawn(ticker)
        assert a.recv(10) == b"done"  # parks; the ticker runs meanwhile
        t.join()
    assert ticked.is_set() and ticks == list(range(10))


def test_recv_variants_and_udp(listener: gsocket.socket) -> None:
    client, server = connected(listener)
    with client, server:
        buf = bytearray(8)
        t = spawn(lambda: server.recv_into(buf, nbytes=4))
        client.sendall(b"abcdefgh")
        assert t.result() == 4 and buf[:4] == b"abcd"
        t = spawn(server.recvfrom, 100)
        assert t.result() == (b"efgh", None)
    with gsocket.socket(stdsocket.AF_INET, stdsocket.SOCK_DGRAM) as u1, \
            gsocket.socket(stdsocket.AF_INET, stdsocket.SOCK_DGRAM) as u2:
        u1.bind(LOCAL)
        port = u1.getsockname()[1]
        reader = spawn(u1.recvfrom, 100)
        wait_parked(reader)
        assert u2.sendto(b"ping", ("localhost", port)) == 4  # host name resolved green
        data, addr = reader.result()
        assert data == b"ping" and addr[1] == u2.getsockname()[1]
        buf = bytearray(10)
        reader = spawn(u1.recvfrom_into, buf)
        wait_parked(reader)
        u2.sendto(b"pong", 0, ("127.0.0.1", port))
        assert reader.result()[0] == 4 and buf[:4] == b"pong"


def test_sendmsg_recvmsg_and_send_fds() -> None:
    a, b = gsocket.socketpair()
    with a, b:
        reader = spawn(b.recvmsg, 100)
        wait_parked(reader)
        a.sendmsg([b"hello ", b"world"])
        assert reader.result()[0] == b"hello world"
        # Iterators survive a park: the retry sees the same buffers (CPython's test_socket).
        buf = bytearray(100)
        reader = spawn(b.recvmsg_into, (x for x in [buf]))
        wait_parked(reader)
        a.sendmsg(x for x in [b"gen", b"erator"])
        assert reader.result()[0] == 9 and buf[:9] == b"generator"
        while True:  # fill a's send buffer, then sendmsg a generator: it parks, then sends it all
            try:
                a.send(b"x" * 65536, stdsocket.MSG_DONTWAIT)
            except BlockingIOError:
                break
        writer = spawn(a.sendmsg, (x for x in [b"after", b"wards"]))
        wait_parked(writer)
        drained = b""
        while not drained.endswith(b"afterwards"):
            drained += b.recv(1 << 20)
        assert writer.result() == 10
        r, w = os.pipe()
        try:
            receiver = spawn(stdsocket.recv_fds, b, 100, 1)  # the stdlib helper over our methods
            wait_parked(receiver)
            stdsocket.send_fds(a, [b"fd"], [r])
            msg, fds, _, _ = receiver.result()
            assert msg == b"fd" and len(fds) == 1
            os.close(fds[0])
        finally:
            os.close(r)
            os.close(w)


def test_sendall_of_8_mib_to_a_slow_reader(listener: gsocket.socket) -> None:
    payload = os.urandom(8 * 1024 * 1024)
    client, server = connected(listener)
    started = Event()

    def slow_reader() -> bytes:
        chunks = []
        started.set()
        while chunk := server.recv(64 * 1024):
            chunks.append(chunk)
            greensched.sleep(0.0005)
        return b"".join(chunks)

    with client, server:
        reader = spawn(slow_reader)
        client.sendall(payload)
        assert started.is_set()  # the reader ran while sendall was parked
        client.shutdown(stdsocket.SHUT_WR)
        assert hashlib.sha256(reader.result()).digest() == hashlib.sha256(payload).digest()


def test_sendall_accepts_any_buffer_and_keeps_the_stdlib_errors() -> None:
    a, b = gsocket.socketpair()
    with a, b:
        a.sendall(array.array("i", [1, 2, 3]))
        a.sendall(memoryview(b"xy"), 0)
        assert b.recv(100) == array.array("i", [1, 2, 3]).tobytes() + b"xy"
        with pytest.raises(TypeError, match="bytes-like object is required"):
            a.sendall("text")  # type: ignore[arg-type]


def test_makefile_rwb_line_protocol(listener: gsocket.socket) -> None:
    client, server = connected(listener)

    def serve() -> None:
        with server, server.makefile("rwb") as f:
            for line in f:
                f.write(line.upper())
                f.flush()

    t = spawn(serve)
    with client:
        f = client.makefile("rwb")
        for word in [b"hello\n", b"green\n", b"world\n"]:
            f.write(word)
            f.flush()
            assert f.readline() == word.upper()
        client.close()  # the makefile still holds the fd open
        f.write(b"last\n")
        f.flush()
        assert f.readline() == b"LAST\n"
        f.close()  # now the fd is really closed: the server sees EOF
    t.result(timeout=10)
    assert client.fileno() == -1


def test_sendfile_of_a_temp_file(listener: gsocket.socket) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        f.seek(0)
        client, server = connected(listener)
        with client, server:
            reader = spawn(recv_all, server)
            assert client.sendfile(f) == len(data)
            assert f.tell() == len(data)
            assert client.sendfile(f, offset=10, count=1000) == 1000
            assert f.tell() == 1010
            assert client.sendfile(io.BytesIO(b"no fileno: falls back on send")) == 29
            client.shutdown(stdsocket.SHUT_WR)
            received = reader.result()
        assert received == data + data[10:1010] + b"no fileno: falls back on send"
        client.close()
        with pytest.raises(ValueError, match="non-blocking sockets are not supported"):
            a, b = gsocket.socketpair()
            with a, b:
                a.setblocking(False)
                a.sendfile(f)


# -- closing, killing, misuse --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["recv", "accept", "sendall"])
def test_close_from_another_green_thread_wakes_the_waiter_with_ebadf(how: str,
                                                                     listener: gsocket.socket) -> None:
    client, server = connected(listener)
    target = {"recv": server, "accept": listener, "sendall": client}[how]
    call = {
        "recv": lambda: server.recv(10),
        "accept": listener.accept,
        "sendall": lambda: client.sendall(b"x" * 64 * 1024 * 1024),  # nobody reads: parks
    }[how]
    with client, server:
        waiter = spawn(call)
        wait_parked(waiter)
        start = time.monotonic()
        target.close()
        with pytest.raises(OSError) as info:
            waiter.result(timeout=5)
        assert time.monotonic() - start < 1.0
        assert info.value.errno == errno.EBADF
    assert get_hub()._netpoll.waiting == 0
    target.close()  # closing twice is harmless


def test_a_second_reader_gets_a_clear_error() -> None:
    a, b = gsocket.socketpair()
    with a, b:
        first = spawn(b.recv, 100)
        wait_parked(first)
        with pytest.raises(RuntimeError, match="another green thread is already waiting to read fd"):
            b.recv(10)
        a.sendall(b"for the first")
        assert first.result() == b"for the first"


def test_killing_a_thread_parked_in_recv_leaves_nothing_registered() -> None:
    a, b = gsocket.socketpair()
    with a, b:
        t = spawn(b.recv, 10)
        wait_parked(t)
        assert get_hub()._netpoll.waiting == 1
        t.kill()
        assert t.done() and get_hub()._netpoll.waiting == 0
        a.sendall(b"still works")
        assert b.recv(100) == b"still works"


def test_a_greensched_timeout_interrupts_a_parked_recv() -> None:
    a, b = gsocket.socketpair()
    with a, b:
        start = time.monotonic()
        with pytest.raises(greensched.TimeoutExpired):
            with greensched.Timeout(0.1):
                b.recv(10)
        assert 0.09 < time.monotonic() - start < 2
        assert get_hub()._netpoll.waiting == 0


def test_close_from_an_os_thread_and_context_manager() -> None:
    a, b = gsocket.socketpair()
    closer = threading.Thread(target=a.close)  # a plain OS thread without a hub
    closer.start()
    closer.join()
    assert a.fileno() == -1 and "[closed]" in repr(a)
    with b:
        assert "greensched.net.socket.socket" in repr(b)
    assert b.fileno() == -1


# -- constructors: every path gives our class and a non-blocking fd ------------------------------------


def assert_green(sock: Any, timeout: Any = None) -> None:
    assert type(sock) is gsocket.socket
    assert os.get_blocking(sock.fileno()) is False
    assert sock.gettimeout() == timeout


def test_every_constructor_gives_a_green_non_blocking_socket(listener: gsocket.socket) -> None:
    assert_green(listener)
    client, server = connected(listener)
    with client, server:
        assert_green(client)
        assert_green(server)
        with gsocket.socket() as plain:
            assert_green(plain)
        with gsocket.socket(stdsocket.AF_INET, stdsocket.SOCK_STREAM | stdsocket.SOCK_NONBLOCK) as nb:
            assert_green(nb, 0.0)  # as the stdlib: SOCK_NONBLOCK means timeout 0.0
        client.settimeout(2.5)
        with client.dup() as dup:
            assert_green(dup, 2.5)
        with gsocket.fromfd(server.fileno(), stdsocket.AF_INET, stdsocket.SOCK_STREAM) as copy:
            assert_green(copy)
            assert copy.fileno() != server.fileno()
        a, b = gsocket.socketpair()
        with a, b:
            assert_green(a)
            assert_green(b)
            assert a.family == stdsocket.AF_UNIX


def test_dup_detach_fromfd_keep_working(listener: gsocket.socket) -> None:
    client, server = connected(listener)
    with client, server:
        dup = client.dup()
        client.close()  # the duplicate keeps the connection open
        reader = spawn(server.recv, 10)
        wait_parked(reader)
        dup.sendall(b"via dup")
        assert reader.result() == b"via dup"
        fd = dup.detach()
        assert dup.fileno() == -1
        with gsocket.socket(fileno=fd) as again:
            assert_green(again)
            reader = spawn(again.recv, 10)
            wait_parked(reader)
            server.sendall(b"back")
            assert reader.result() == b"back"
            with gsocket.fromfd(again.fileno(), again.family, again.type) as copy:
                copy.sendall(b"copy")
                assert server.recv(10) == b"copy"


def test_socketpair_both_ways() -> None:
    a, b = gsocket.socketpair(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    with a, b:
        t = spawn(lambda: b.recv(5) + b.recv(5))
        wait_parked(t)
        a.send(b"12345")
        a.send(b"67890")
        assert t.result() == b"1234567890"
        b.sendall(b"back")
        assert a.recv(10) == b"back"


def test_create_server_and_create_connection() -> None:
    with gsocket.create_server(("localhost", 0)) as server:  # bind() resolves green
        host, port = server.getsockname()
        assert host == "127.0.0.1"
        acceptor = spawn(server.accept)
        with gsocket.create_connection(("localhost", port), timeout=7, source_address=("127.0.0.1", 0)) as c:
            assert_green(c, 7.0)
            conn, addr = acceptor.result()
            with conn:
                assert addr == c.getsockname()
                assert_green(conn)
        server.close()
        with pytest.raises(ConnectionRefusedError):
            gsocket.create_connection(("127.0.0.1", port))
        with pytest.raises(ExceptionGroup) as info:
            gsocket.create_connection(("127.0.0.1", port), all_errors=True)
        assert all(isinstance(e, ConnectionRefusedError) for e in info.value.exceptions)
    with pytest.raises(OSError, match="while attempting to bind on address"):
        with gsocket.create_server(LOCAL) as first:
            gsocket.create_server(first.getsockname())


def test_connect_with_a_host_name(listener: gsocket.socket) -> None:
    port = listener.getsockname()[1]
    with gsocket.socket() as c:
        c.connect(("localhost", port))
        assert c.getpeername() == ("127.0.0.1", port)
    with gsocket.socket() as c:
        assert c.connect_ex(("localhost", port)) == 0
    for _ in range(2):
        listener.accept()[0].close()
    with gsocket.socket() as c, pytest.raises(TypeError):
        c.connect(("localhost", "not a port"))  # the C code's own error


def test_implements_lists_every_name() -> None:
    assert set(gsocket.__implements__) == {
        "socket", "create_connection", "create_server", "socketpair", "fromfd",
        "getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo", "getfqdn",
    }
    for name in gsocket.__implements__:
        obj = getattr(gsocket, name)
        assert obj.__module__.startswith("greensched.net.") and obj.__doc__, name
    assert issubclass(gsocket.socket, stdsocket.socket)
    for name in ["create_connection", "create_server", "socketpair", "fromfd"]:
        assert inspect.signature(getattr(gsocket, name)) == inspect.signature(getattr(stdsocket, name))
    assert (inspect.signature(gsocket.socket).parameters.keys()
            == inspect.signature(stdsocket.socket).parameters.keys())
    assert stdsocket.socket.__name__ == "socket" and gsocket.socket.__name__ == "socket"
