"""Green DNS: the stdlib's answers, computed on pool OS threads while green threads run.

Only names the machine answers itself are looked up (``localhost``, ``127.0.0.1``,
the host's own name from /etc/hosts): no test depends on the network. An audit hook
(``sys.addaudithook``; CPython's resolver functions raise ``socket.getaddrinfo``,
``socket.gethostbyname``... events from the OS thread that runs them) tells which OS
thread did each lookup and, when armed with a delay, makes the real resolver slow
without replacing any of our code.
"""

from __future__ import annotations

import inspect
import socket as stdsocket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import greensched
from greensched import Event, spawn
from greensched.net import dns, socket as gsocket


class _Resolver:
    """What the audit hook saw: (event, OS thread) pairs; and an optional delay."""

    def __init__(self) -> None:
        self.armed = False
        self.delay = 0.0
        self.seen: list[tuple[str, int]] = []
        self.connects: list[Any] = []

    def __call__(self, event: str, args: Any) -> None:
        if self.armed and event.startswith("socket.get"):
            self.seen.append((event, threading.get_ident()))
            if self.delay:
                time.sleep(self.delay)
        elif self.armed and event == "socket.connect":
            self.connects.append(args[1])

    def threads(self, event: str) -> set[str]:
        """'main' and/or 'pool': where ``event`` ran."""
        main = threading.main_thread().ident
        return {"main" if ident == main else "pool" for name, ident in self.seen if name == event}


_resolver = _Resolver()
sys.addaudithook(_resolver)  # permanent (audit hooks cannot be removed), inert unless armed


@pytest.fixture
def resolver() -> Iterator[_Resolver]:
    _resolver.seen.clear()
    _resolver.connects.clear()
    _resolver.delay = 0.0
    _resolver.armed = True
    try:
        yield _resolver
    finally:
        _resolver.armed = False
        _resolver.delay = 0.0


def outcome(fn: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("returned", fn())
    except Exception as exc:
        return ("raised", type(exc), exc.args)


# -- the stdlib's answers ------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ("localhost", 80),
    ("localhost", 80, stdsocket.AF_INET, stdsocket.SOCK_STREAM),
    ("localhost", "http"),
    ("localhost", None, 0, 0, 0, stdsocket.AI_CANONNAME),
    ("localhost", "no-such-service-here"),  # gaierror, same as the stdlib's
])
def test_getaddrinfo_of_a_name_matches_the_stdlib_and_runs_on_a_pool_thread(
    args: tuple[Any, ...], resolver: _Resolver,
) -> None:
    ours = outcome(lambda: dns.getaddrinfo(*args))
    assert resolver.threads("socket.getaddrinfo") == {"pool"}
    assert ours == outcome(lambda: stdsocket.getaddrinfo(*args))
    if ours[0] == "returned":
        assert all(type(af) is stdsocket.AddressFamily and type(kind) is stdsocket.SocketKind
                   for af, kind, _, _, _ in ours[1])


@pytest.mark.parametrize("args", [
    ("127.0.0.1", 80),
    ("127.0.0.1", "8080", stdsocket.AF_INET, stdsocket.SOCK_DGRAM),
    ("::1", 443, stdsocket.AF_INET6),
    (b"127.0.0.1", None),
    ("127.1", 0),
    (None, 80, 0, stdsocket.SOCK_STREAM, 0, stdsocket.AI_PASSIVE),
    (None, 0),
    ("127.0.0.1", 80, 12345),  # a bad family: the thread gives the stdlib's gaierror
    ("127.0.0.1", 80, 0, 0, 0, stdsocket.AI_CANONNAME),  # canonical names take the thread
])
def test_numeric_getaddrinfo_matches_the_stdlib(args: tuple[Any, ...], resolver: _Resolver) -> None:
    ours = outcome(lambda: dns.getaddrinfo(*args))
    where = resolver.threads("socket.getaddrinfo")
    assert ours == outcome(lambda: stdsocket.getaddrinfo(*args))
    if ours[0] == "returned" and args[0] != "127.1" and not (len(args) > 5
                                                             and args[5] & stdsocket.AI_CANONNAME):
        assert where == {"main"}  # answered at once, without a thread


def test_getaddrinfo_takes_the_stdlib_keywords() -> None:
    assert dns.getaddrinfo(host="127.0.0.1", port=80, family=stdsocket.AF_INET, type=stdsocket.SOCK_STREAM,
                           proto=0, flags=0) == stdsocket.getaddrinfo("127.0.0.1", 80, stdsocket.AF_INET,
                                                                      stdsocket.SOCK_STREAM)
    ours, theirs = inspect.signature(dns.getaddrinfo), inspect.signature(stdsocket.getaddrinfo)
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
        (p.name, p.kind, p.default) for p in theirs.parameters.values()]
    with pytest.raises(TypeError):
        dns.getaddrinfo(12345, 80)  # type: ignore[arg-type]


def test_gethostbyname(resolver: _Resolver) -> None:
    assert dns.gethostbyname("127.0.0.1") == "127.0.0.1"
    assert resolver.threads("socket.gethostbyname") == {"main"}  # numeric: no lookup
    resolver.seen.clear()
    assert dns.gethostbyname("localhost") == stdsocket.gethostbyname("localhost")
    assert "pool" in resolver.threads("socket.gethostbyname")
    assert dns.gethostbyname("") == stdsocket.gethostbyname("")


def test_gethostbyname_ex_gethostbyaddr_getnameinfo(resolver: _Resolver) -> None:
    cases: list[tuple[Callable[..., Any], Callable[..., Any], tuple[Any, ...], str]] = [
        (dns.gethostbyname_ex, stdsocket.gethostbyname_ex, ("localhost",), "socket.gethostbyname"),
        (dns.gethostbyaddr, stdsocket.gethostbyaddr, ("127.0.0.1",), "socket.gethostbyaddr"),
        (dns.getnameinfo, stdsocket.getnameinfo, (("127.0.0.1", 80), 0), "socket.getnameinfo"),
        (dns.getnameinfo, stdsocket.getnameinfo,
         (("127.0.0.1", 80), stdsocket.NI_NUMERICHOST | stdsocket.NI_NUMERICSERV), "socket.getnameinfo"),
        (dns.getnameinfo, stdsocket.getnameinfo, (("127.0.0.1", 80, 0, 0, 0), 0), "socket.getnameinfo"),
    ]
    for ours, theirs, args, event in cases:
        resolver.seen.clear()
        result = outcome(lambda: ours(*args))
        assert result == outcome(lambda: theirs(*args)), (ours, args)
        if result[0] == "returned":
            assert "pool" in resolver.threads(event), (ours, args)


def test_getfqdn_matches_the_stdlib_and_calls_the_original_resolver(resolver: _Resolver) -> None:
    for name in ["", "localhost", "127.0.0.1", "  localhost  ", "0.0.0.0"]:
        resolver.seen.clear()
        assert dns.getfqdn(name) == stdsocket.getfqdn(name)
        assert resolver.threads("socket.gethostbyaddr") == {"pool", "main"}  # ours, then the stdlib's
    assert dns.getfqdn() == stdsocket.getfqdn()
    assert inspect.signature(dns.getfqdn).parameters["name"].default == ""


def test_implements() -> None:
    assert sorted(dns.__implements__) == sorted([
        "getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo", "getfqdn"])
    for name in dns.__implements__:
        assert getattr(dns, name).__doc__ == getattr(stdsocket, name).__doc__
        assert getattr(gsocket, name) is getattr(dns, name)  # re-exported for the socket patch


# -- green while it waits ------------------------------------------------------------------------------


def test_a_ticker_keeps_running_during_a_slow_lookup(resolver: _Resolver) -> None:
    resolver.delay = 0.3  # the real resolver, slowed down on its OS thread
    ticks: list[float] = []
    stop = Event()

    def ticker() -> None:
        while not stop.is_set():
            greensched.sleep(0.005)
            ticks.append(time.monotonic())

    t = spawn(ticker)
    start = time.monotonic()
    try:
        assert dns.getaddrinfo("localhost", 80) == stdsocket.getaddrinfo("localhost", 80)
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        t.join()
    assert elapsed >= 0.29
    assert len([tick for tick in ticks if tick < start + elapsed]) >= 10


def test_concurrent_lookups_overlap(resolver: _Resolver) -> None:
    resolver.delay = 0.2
    start = time.monotonic()
    threads = [spawn(dns.gethostbyname_ex, "localhost") for _ in range(8)]
    results = [t.result() for t in threads]
    assert time.monotonic() - start < 1.2  # one after the other: 1.6 s
    assert results == [stdsocket.gethostbyname_ex("localhost")] * 8


def test_green_sockets_resolve_host_names_on_a_pool_thread(resolver: _Resolver) -> None:
    """connect(("localhost", port)) never lets the C code resolve the name inline."""
    with gsocket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with gsocket.socket() as c:
            c.connect(("localhost", port))
        assert resolver.threads("socket.getaddrinfo") == {"pool"}
        assert resolver.connects == [("127.0.0.1", port)]
        server.accept()[0].close()
        for bad in [("localhost", port, "extra"), ("localhost",), ["localhost", port], ("localhost", "port")]:
            with gsocket.socket() as c, stdsocket.socket() as std:
                assert outcome(lambda: c.connect(bad)) == outcome(lambda: std.connect(bad)), bad


def test_getnameinfo_refuses_a_non_tuple_as_the_c_function_does_and_keeps_no_reference() -> None:
    """CPython's test_socket counts the argument's references around the failing call."""
    name = "a string, not an address" + str(time.monotonic())  # a fresh object, ours alone
    before = sys.getrefcount(name)
    with pytest.raises(TypeError, match=r"^getnameinfo\(\) argument 1 must be a tuple$") as info:
        dns.getnameinfo(name, 0)  # type: ignore[arg-type]  # the wrong type is the point
    assert sys.getrefcount(name) == before  # the traceback (still alive here) holds none
    assert info.value.__traceback__ is not None
