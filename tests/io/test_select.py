"""greensched.net.select: green select/poll/selectors against the stdlib's, on real fds.

Nothing is patched: ``select.select``, ``select.poll`` and ``selectors.*`` here are
the originals, and every answer of the green versions is compared with theirs on
the same fds.
"""

from __future__ import annotations

import errno
import math
import os
import select
import selectors
import socket
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

import greensched
from greensched import Event, GreenThread, Timeout, TimeoutExpired, spawn
from greensched._core._hub import get_hub
from greensched.net import select as green
from tests.util import drain, fill, parked

# -- helpers ------------------------------------------------------------------------------


def waiting() -> int:
    """fds the netpoller watches for someone right now."""
    return get_hub()._netpoll.waiting


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    with a, b:
        yield a, b


@pytest.fixture
def tcp() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected TCP pair on 127.0.0.1 (for urgent data, which socketpairs lack)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        conn, _ = server.accept()
    with client, conn:
        yield client, conn


def raised(call: Callable[[], Any]) -> BaseException:
    with pytest.raises(BaseException) as info:
        call()
    return info.value


def assert_same_error(green_call: Callable[[], Any], stdlib_call: Callable[[], Any]) -> None:
    expected = raised(stdlib_call)
    got = raised(green_call)
    assert type(got) is type(expected), (got, expected)
    assert str(got) == str(expected)
    assert got.args == expected.args


class Fileno:
    """An object select accepts through its fileno() method."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def fileno(self) -> Any:
        return self.value


def ticker(ticks: list[bool], target: GreenThread, n: int, then: Callable[[], Any]) -> None:
    """Tick ``n`` times, noting each time whether ``target`` was parked, then call ``then``."""
    for _ in range(n):
        ticks.append(target.state == "PARKED")
        greensched.sleep(0.005)
    then()


def spawn_ticking_sender(b: socket.socket) -> tuple[list[bool], Event, GreenThread]:
    """A thread that, once ``go`` is set, ticks 10 times noting whether the caller is
    parked, then sends a byte on ``b`` to wake it."""
    ticks: list[bool] = []
    go = Event()
    main = greensched.current_thread()

    def tick() -> None:
        go.wait()
        ticker(ticks, main, 10, lambda: b.send(b"x"))

    return ticks, go, spawn(tick)


# -- module shape ----------------------------------------------------------------------------


def test_implements_lists_name_real_objects_and_nothing_is_patched() -> None:
    assert green.__implements_select__ == ["select", "poll"]
    assert "DefaultSelector" in green.__implements_selectors__
    for name in green.__implements_select__ + green.__implements_selectors__:
        assert callable(getattr(green, name))
    assert green.DefaultSelector is green.GreenSelector
    assert issubclass(green.GreenSelector, selectors.BaseSelector)
    assert issubclass(green.SelectSelector, selectors.BaseSelector)
    # Importing the module changed nothing in the stdlib, and kept the originals.
    assert select.select is green._original_select
    assert select.poll is green._original_poll
    assert selectors.DefaultSelector is not green.GreenSelector


# -- select.select: answers ----------------------------------------------------------------------


def test_select_results_match_the_stdlib(pair: tuple[socket.socket, socket.socket],
                                         pipe: tuple[int, int]) -> None:
    """Same ready objects, same identity, same order, duplicates kept, ints and objects mixed."""
    a, b = pair
    r, w = pipe
    fa = Fileno(a.fileno())
    fill(b)
    b.setblocking(True)
    a.send(b"data")  # b readable; a is writable
    cases = [
        ([a, b, r, fa, b, b.fileno()], [a, b, w, fa, w], [a, b, r]),
        ([a, r], [], []),
        ([], [b, a], [a]),
        ((b, a), (w,), ()),
        ([], [], []),
    ]
    for rlist, wlist, xlist in cases:
        expected = select.select(rlist, wlist, xlist, 0)
        for timeout in (0, 0.0, 5, None) if any(expected) else (0, 0.0):
            got = green.select(rlist, wlist, xlist, timeout)
            assert got == expected
            assert all(x is y for g, e in zip(got, expected, strict=True) for x, y in zip(g, e, strict=True))
            assert type(got) is tuple and all(type(lst) is list for lst in got)


def test_select_accepts_any_iterable(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    b.send(b"x")
    assert green.select((s for s in [a, b]), iter([]), {a: 1}, 5) == select.select([a, b], [], [a], 0)


def test_select_mutating_fileno_behaves_like_the_stdlib() -> None:
    """CPython's test_select_mutated: the list is read as the stdlib reads it."""
    for impl in (select.select, green.select):
        items: list[Any] = []

        class F:
            def fileno(self) -> int:
                del items[-1]
                return 1  # stdout: writable

        items[:] = [F()] * 10
        assert impl([], items, []) == ([], items[:5], [])


def test_select_timeout_with_nothing_ready(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    start = time.monotonic()
    assert green.select([r], [], [], 0.1) == ([], [], [])
    assert 0.09 <= time.monotonic() - start < 3.0
    start = time.monotonic()
    assert green.select([r], [], [], 0) == ([], [], [])
    assert green.select([r], [], [], -0.0) == ([], [], [])
    assert time.monotonic() - start < 0.5
    assert waiting() == 0


def test_select_with_no_fds_sleeps_for_the_timeout() -> None:
    start = time.monotonic()
    assert green.select([], [], [], 0.05) == ([], [], [])
    assert 0.04 <= time.monotonic() - start < 3.0


def test_select_wakes_for_a_writable_fd(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    fill(a)
    waiter = spawn(green.select, [], [a], [], 10)
    parked(waiter)
    drain(b)
    assert waiter.result(timeout=10) == ([], [a], [])
    assert waiting() == 0


@pytest.mark.parametrize(
    "timeout",
    [-1, -1e-300, -math.inf, math.nan, math.inf, 1e300, 9.3e9, 2**63, -(2**70), 9223372037,
     "1", Decimal("0.1"), [], 1j],
    ids=repr,
)
def test_select_bad_timeouts_raise_what_the_stdlib_raises(timeout: Any) -> None:
    assert_same_error(lambda: green.select([], [], [], timeout), lambda: select.select([], [], [], timeout))


def test_select_negative_timeout_message() -> None:
    with pytest.raises(ValueError, match="^timeout must be non-negative$"):
        green.select([], [], [], -1)


@pytest.mark.parametrize(
    "lists",
    [
        (5, [], []), ([], None, []), ([], [], "ab"), ([-1], [], []), ([2**40], [], []),
        ([1024], [], []), ([object()], [], []), ([Fileno("x")], [], []), ([], [Fileno(-3)], []),
        ([1.0], [], []), ([], [Fileno(2**40)], []),
    ],
    ids=repr,
)
def test_select_bad_fds_raise_what_the_stdlib_raises(lists: tuple[Any, Any, Any]) -> None:
    assert_same_error(lambda: green.select(*lists, 5), lambda: select.select(*lists, 0))
    assert waiting() == 0


def test_select_on_a_closed_fd_is_ebadf(pipe: tuple[int, int]) -> None:
    r, w = pipe
    dead_r, dead_w = os.pipe()
    os.close(dead_r)
    os.close(dead_w)
    assert_same_error(lambda: green.select([r, dead_r], [], [], 5),
                      lambda: select.select([r, dead_r], [], [], 0))
    assert raised(lambda: green.select([r], [], [dead_w], 5)).errno == errno.EBADF  # type: ignore[attr-defined]
    assert waiting() == 0


def test_select_on_a_regular_file(tmp_path: Any) -> None:
    """Always readable and writable; never exceptional (and that must not spin)."""
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with open(path, "rb") as f:
        assert green.select([f], [f], [f], 5) == select.select([f], [f], [f], 0) == ([f], [f], [])
        hub = get_hub()
        switches = hub.switches
        start = time.monotonic()
        assert green.select([], [], [f], 0.2) == ([], [], [])
        assert 0.19 <= time.monotonic() - start < 3.0
        assert hub.switches - switches < 50  # re-checked with back-off, not in a loop
    assert waiting() == 0


# -- select.select: parking ----------------------------------------------------------------------


def test_other_green_threads_run_while_select_waits(pair: tuple[socket.socket, socket.socket]) -> None:
    """A ticker keeps ticking while main is parked in select(..., 1.0); then it wakes main."""
    a, b = pair
    ticks, go, thread = spawn_ticking_sender(b)
    go.set()  # the ticker starts once main parks in select
    start = time.monotonic()
    assert green.select([a], [], [], 1.0) == ([a], [], [])
    assert time.monotonic() - start < 1.0
    assert ticks == [True] * 10  # every tick happened while main was parked in select
    thread.join()


def test_many_green_threads_selecting_on_one_fd_all_wake(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    reader = spawn(greensched.wait_readable, a.fileno(), 10)  # an exclusive reader, too
    threads = [spawn(green.select, [a], [], [], 10) for _ in range(50)]
    for thread in [reader, *threads]:
        parked(thread)
    assert waiting() == 1
    b.send(b"x")
    assert all(t.result(timeout=10) == ([a], [], []) for t in threads)
    assert reader.result(timeout=10) is True
    assert waiting() == 0


def test_select_parks_again_when_another_thread_took_the_data(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """Woken, but the bytes are gone: not ready any more, so it waits on."""
    a, b = pair
    a.setblocking(False)
    waiter = spawn(green.select, [a], [], [], 10)
    parked(waiter)
    b.send(b"1")
    a.recv(1)  # main consumes the byte before the woken waiter runs
    greensched.sleep(0.02)
    assert not waiter.done()
    parked(waiter)
    b.send(b"2")
    assert waiter.result(timeout=10) == ([a], [], [])


def test_killing_a_thread_parked_in_select_leaves_nothing(pair: tuple[socket.socket, socket.socket],
                                                          pipe: tuple[int, int]) -> None:
    a, b = pair
    r, w = pipe
    fill(a)
    before = waiting()
    waiter = spawn(green.select, [a, r], [a], [r, b], 30)
    parked(waiter)
    assert waiting() == before + 2
    waiter.kill()
    assert waiting() == before
    with pytest.raises(TimeoutExpired):
        with Timeout(0.05):
            green.select([r], [], [], 30)
    assert waiting() == before


def test_a_socket_closed_while_select_waits_is_ebadf(pipe: tuple[int, int]) -> None:
    """notify_fd_closed wakes the selecting thread; the stdlib's select then says EBADF."""
    r, w = pipe
    waiter = spawn(green.select, [r], [], [], 30)
    parked(waiter)
    greensched.notify_fd_closed(r)
    os.close(r)
    with pytest.raises(OSError) as info:
        waiter.result(timeout=10)
    assert info.value.errno == errno.EBADF
    assert waiting() == 0


def test_xlist_sees_urgent_data(tcp: tuple[socket.socket, socket.socket]) -> None:
    """A lone MSG_OOB byte is an exceptional condition, not readability: re-checked."""
    client, conn = tcp
    waiter = spawn(green.select, [], [], [conn], 10)
    parked(waiter)
    client.send(b"!", socket.MSG_OOB)
    start = time.monotonic()
    assert waiter.result(timeout=10) == ([], [], [conn])
    assert time.monotonic() - start < 2.0
    assert select.select([], [], [conn], 0) == ([], [], [conn])
    assert waiting() == 0


def test_xlist_with_ordinary_data_does_not_spin(tcp: tuple[socket.socket, socket.socket]) -> None:
    client, conn = tcp
    client.send(b"plain")
    assert select.select([conn], [], [conn], 0) == ([conn], [], [])
    hub = get_hub()
    switches = hub.switches
    start = time.monotonic()
    assert green.select([], [], [conn], 0.2) == ([], [], [])
    assert 0.19 <= time.monotonic() - start < 3.0
    assert hub.switches - switches < 50


# -- select.poll --------------------------------------------------------------------------------


def both_polls() -> tuple[Any, Any]:
    return green.poll(), select.poll()


def test_poll_results_match_the_stdlib(pair: tuple[socket.socket, socket.socket],
                                       pipe: tuple[int, int]) -> None:
    a, b = pair
    r, w = pipe
    fill(b)
    a.send(b"x")
    os.write(w, b"y")
    dead_r, dead_w = os.pipe()
    os.close(dead_r)
    os.close(dead_w)
    registrations = [
        (a, select.POLLIN | select.POLLOUT), (b, None), (r, select.POLLIN),
        (w, select.POLLOUT), (b.fileno(), select.POLLOUT), (dead_r, select.POLLIN),
    ]
    gp, sp = both_polls()
    for fd, mask in registrations:
        for p in (gp, sp):
            p.register(fd) if mask is None else p.register(fd, mask)
    assert gp.poll(0) == sp.poll(0) == gp.poll() == gp.poll(5000)
    for p in (gp, sp):
        p.modify(a, select.POLLPRI)
        p.unregister(dead_r)
    assert gp.poll(1000) == sp.poll(0)


def test_poll_reports_a_hang_up_like_the_stdlib(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    gp, sp = both_polls()
    for p in (gp, sp):
        p.register(a, select.POLLIN)
    waiter = spawn(gp.poll, 10_000)
    parked(waiter)
    b.close()
    assert waiter.result(timeout=10) == sp.poll(0) != []


def test_poll_registration_errors_match_the_stdlib(pipe: tuple[int, int]) -> None:
    r, w = pipe
    gp, sp = both_polls()
    for args in [(-1,), ("a",), (Fileno("x"),), (r, -1), (r, 70000), (r, "x"), (2**40,)]:
        assert_same_error(lambda: gp.register(*args), lambda: sp.register(*args))
    assert_same_error(lambda: gp.modify(r, select.POLLIN), lambda: sp.modify(r, select.POLLIN))
    err = raised(lambda: gp.modify(r, select.POLLIN))
    assert isinstance(err, OSError) and err.errno == errno.ENOENT
    assert_same_error(lambda: gp.unregister(r), lambda: sp.unregister(r))
    with pytest.raises(TypeError):  # positional-only, as in the stdlib (the message differs)
        gp.register(fd=r)  # type: ignore[call-arg]
    gp.register(r)
    gp.unregister(r)
    assert_same_error(lambda: gp.unregister(r), lambda: sp.unregister(r))
    with pytest.raises(TypeError, match="cannot create"):
        type(gp)()


@pytest.mark.parametrize(
    "timeout",
    [math.nan, "a", Decimal("0.1"), 1e300, 2**31, -(2**31) - 1, 2147483647.5, -2147483648.5, math.inf],
    ids=repr,
)
def test_poll_bad_timeouts_raise_what_the_stdlib_raises(timeout: Any) -> None:
    gp, sp = both_polls()
    assert_same_error(lambda: gp.poll(timeout), lambda: sp.poll(timeout))


def test_poll_timeouts(pipe: tuple[int, int]) -> None:
    r, w = pipe
    p = green.poll()
    p.register(r, select.POLLIN)
    start = time.monotonic()
    assert p.poll(0) == [] and p.poll(0.0) == [] and p.poll(-0.0) == []
    assert time.monotonic() - start < 0.5
    start = time.monotonic()
    assert p.poll(100) == []
    assert 0.09 <= time.monotonic() - start < 3.0
    assert p.poll(0.3) == []  # a fraction of a millisecond still waits (rounded up)
    # None, and any negative number, wait until something is ready.
    for forever in (None, -1, -0.5, -(2**31)):
        waiter = spawn(p.poll, forever)
        parked(waiter)
        os.write(w, b"x")
        assert waiter.result(timeout=10) == [(r, select.POLLIN)]
        os.read(r, 1)
    assert waiting() == 0


def test_poll_on_nothing_sleeps_for_the_timeout() -> None:
    start = time.monotonic()
    assert green.poll().poll(50) == []
    assert 0.04 <= time.monotonic() - start < 3.0


def test_concurrent_poll_of_one_object_is_an_error(pipe: tuple[int, int]) -> None:
    r, w = pipe
    p = green.poll()
    p.register(r, select.POLLIN)
    waiter = spawn(p.poll, 10_000)
    parked(waiter)
    with pytest.raises(RuntimeError, match="^concurrent poll\\(\\) invocation$"):
        p.poll(0)
    os.write(w, b"x")
    assert waiter.result(timeout=10) == [(r, select.POLLIN)]
    assert p.poll(0) == [(r, select.POLLIN)]  # usable again


def test_other_green_threads_run_while_poll_waits(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    ticks, go, thread = spawn_ticking_sender(b)
    p = green.poll()
    p.register(a, select.POLLIN)
    go.set()
    assert p.poll(1000) == [(a.fileno(), select.POLLIN)]
    assert ticks == [True] * 10
    thread.join()


def test_many_green_threads_polling_one_fd_all_wake(pipe: tuple[int, int]) -> None:
    r, w = pipe

    def wait() -> Any:
        p = green.poll()
        p.register(r, select.POLLIN | select.POLLPRI)
        return p.poll(10_000)

    threads = [spawn(wait) for _ in range(50)]
    for thread in threads:
        parked(thread)
    os.write(w, b"x")
    assert all(t.result(timeout=10) == [(r, select.POLLIN)] for t in threads)
    assert waiting() == 0


def test_killing_a_thread_parked_in_poll_leaves_nothing(pair: tuple[socket.socket, socket.socket],
                                                        pipe: tuple[int, int]) -> None:
    a, b = pair
    fill(a)
    r, w = pipe
    p = green.poll()
    p.register(a)  # POLLIN | POLLPRI | POLLOUT: nothing ready
    p.register(r, select.POLLIN)
    waiter = spawn(p.poll)
    parked(waiter)
    assert waiting() == 2
    waiter.kill()
    assert waiting() == 0
    assert p.poll(0) == []  # the object is not left "running"


def test_an_fd_closed_while_poll_waits_is_pollnval_like_the_stdlib(pipe: tuple[int, int]) -> None:
    """notify_fd_closed wakes it; the real poll then reports POLLNVAL, as it would unpatched."""
    r, w = pipe
    p = green.poll()
    p.register(r, select.POLLIN)
    waiter = spawn(p.poll)
    parked(waiter)
    greensched.notify_fd_closed(r)
    os.close(r)
    assert waiter.result(timeout=10) == [(r, select.POLLNVAL)]
    sp = select.poll()
    sp.register(r, select.POLLIN)
    assert sp.poll(0) == [(r, select.POLLNVAL)]
    assert waiting() == 0


def test_poll_pri_only_sees_urgent_data(tcp: tuple[socket.socket, socket.socket]) -> None:
    client, conn = tcp
    p = green.poll()
    p.register(conn, select.POLLPRI)
    waiter = spawn(p.poll, 10_000)
    parked(waiter)
    client.send(b"!", socket.MSG_OOB)
    assert waiter.result(timeout=10) == [(conn.fileno(), select.POLLPRI)]


@pytest.mark.skipif(not hasattr(os, "eventfd"), reason="needs os.eventfd (Linux)")
def test_a_mask_epoll_and_poll_disagree_on_does_not_spin() -> None:
    """An eventfd is EPOLLIN but never POLLRDNORM: the watch fires, the check says no."""
    efd = os.eventfd(0)
    try:
        os.eventfd_write(efd, 1)
        sp = select.poll()
        sp.register(efd, select.POLLRDNORM)
        assert sp.poll(0) == []
        p = green.poll()
        p.register(efd, select.POLLRDNORM)
        hub = get_hub()
        switches = hub.switches
        start = time.monotonic()
        assert p.poll(200) == []
        assert 0.19 <= time.monotonic() - start < 3.0
        assert hub.switches - switches < 60  # gave up watching it, re-checked with back-off
    finally:
        os.close(efd)
    assert waiting() == 0


# -- selectors --------------------------------------------------------------------------------


def key_view(ready: list[tuple[selectors.SelectorKey, int]]) -> list[tuple[Any, ...]]:
    return [(id(k.fileobj), k.fd, k.events, k.data, ev) for k, ev in ready]


@pytest.mark.parametrize(
    "green_cls,stdlib_cls",
    [(green.GreenSelector, selectors.PollSelector), (green.GreenSelectSelector, selectors.SelectSelector)],
    ids=["poll", "select"],
)
def test_selector_results_match_the_stdlib(green_cls: Any, stdlib_cls: Any,
                                           pair: tuple[socket.socket, socket.socket],
                                           pipe: tuple[int, int]) -> None:
    a, b = pair
    r, w = pipe
    fill(b)
    a.send(b"x")
    regs = [(a, selectors.EVENT_READ | selectors.EVENT_WRITE, "a"), (b, selectors.EVENT_READ, None),
            (r, selectors.EVENT_READ, 3), (w, selectors.EVENT_WRITE, "w")]
    with green_cls() as gs, stdlib_cls() as ss, selectors.DefaultSelector() as es:
        for fileobj, events, data in regs:
            for s in (gs, ss, es):
                s.register(fileobj, events, data)
        expected = key_view(ss.select(0))
        assert key_view(gs.select(0)) == key_view(gs.select(5)) == key_view(gs.select()) == expected
        assert sorted(expected) == sorted(key_view(es.select(0)))  # what epoll says, too
        for s in (gs, ss):
            s.modify(a, selectors.EVENT_READ, "changed")
            s.unregister(w)
        assert key_view(gs.select(1)) == key_view(ss.select(0))
        assert gs.get_key(a) == ss.get_key(a)
        assert dict(gs.get_map()) == dict(ss.get_map())


@pytest.mark.parametrize("green_cls,stdlib_cls", [(green.GreenSelector, selectors.PollSelector),
                                                  (green.GreenSelectSelector, selectors.SelectSelector)],
                         ids=["poll", "select"])
def test_selector_bookkeeping_errors_match_the_stdlib(green_cls: Any, stdlib_cls: Any,
                                                      pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    gs, ss = green_cls(), stdlib_cls()
    for s in (gs, ss):
        s.register(a, selectors.EVENT_READ)
    cases: list[Callable[[Any], Any]] = [
        lambda s: s.register(a, selectors.EVENT_READ),  # KeyError: already registered
        lambda s: s.register(b, 0),  # ValueError: invalid events
        lambda s: s.register(b, 4),
        lambda s: s.register(-1, selectors.EVENT_READ),
        lambda s: s.register("x", selectors.EVENT_READ),
        lambda s: s.unregister(b),  # KeyError
        lambda s: s.modify(b, selectors.EVENT_READ),  # KeyError
        lambda s: s.get_key(b),  # KeyError
        lambda s: s.select("soon"),  # TypeError
        lambda s: s.select(math.nan),
    ]
    for case in cases:
        assert_same_error(lambda: case(gs), lambda: case(ss))
    if green_cls is green.GreenSelector:
        for case in [lambda s: s.select(math.inf), lambda s: s.select(1e10)]:
            assert_same_error(lambda: case(gs), lambda: case(ss))
    for s in (gs, ss):
        s.close()
    assert gs.get_map() is None and ss.get_map() is None
    assert_same_error(lambda: gs.get_key(a), lambda: ss.get_key(a))  # RuntimeError: closed


def test_selector_timeouts(pipe: tuple[int, int]) -> None:
    r, w = pipe
    for cls in (green.DefaultSelector, green.SelectSelector):
        with cls() as s:
            s.register(r, selectors.EVENT_READ)
            start = time.monotonic()
            assert s.select(0) == [] and s.select(-1) == []
            assert time.monotonic() - start < 0.5
            start = time.monotonic()
            assert s.select(0.1) == []
            assert 0.09 <= time.monotonic() - start < 3.0
            waiter = spawn(s.select)
            parked(waiter)
            os.write(w, b"x")
            assert key_view(waiter.result(timeout=10)) == key_view([(s.get_key(r), selectors.EVENT_READ)])
            os.read(r, 1)
    with green.DefaultSelector() as empty:
        start = time.monotonic()
        assert empty.select(0.05) == []
        assert 0.04 <= time.monotonic() - start < 3.0
    assert waiting() == 0


def test_other_green_threads_run_while_a_selector_waits(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    ticks, go, thread = spawn_ticking_sender(b)
    with green.DefaultSelector() as s:
        s.register(a, selectors.EVENT_READ, "a")
        go.set()
        ready = s.select(1.0)
    assert [(k.fileobj, k.data, ev) for k, ev in ready] == [(a, "a", selectors.EVENT_READ)]
    assert ticks == [True] * 10
    thread.join()


def test_many_selectors_on_one_fd_all_wake(pipe: tuple[int, int]) -> None:
    r, w = pipe

    def wait() -> list[int]:
        with green.DefaultSelector() as s:
            s.register(r, selectors.EVENT_READ)
            return [ev for _, ev in s.select(10)]

    threads = [spawn(wait) for _ in range(50)]
    for thread in threads:
        parked(thread)
    os.write(w, b"x")
    assert all(t.result(timeout=10) == [selectors.EVENT_READ] for t in threads)
    assert waiting() == 0


def test_killing_a_thread_parked_in_a_selector_leaves_nothing(pair: tuple[socket.socket, socket.socket],
                                                              pipe: tuple[int, int]) -> None:
    a, b = pair
    r, w = pipe
    fill(a)
    for cls in (green.DefaultSelector, green.SelectSelector):
        with cls() as s:
            s.register(a, selectors.EVENT_READ | selectors.EVENT_WRITE)
            s.register(r, selectors.EVENT_READ)
            waiter = spawn(s.select)
            parked(waiter)
            assert waiting() == 2
            waiter.kill()
            assert waiting() == 0


def test_selector_sees_a_registration_made_by_another_thread(
        pipe: tuple[int, int], pair: tuple[socket.socket, socket.socket]) -> None:
    """A registration made while select() waits counts from its next check on."""
    r, w = pipe
    a, b = pair
    with green.DefaultSelector() as s:
        s.register(r, selectors.EVENT_READ)
        waiter = spawn(s.select, 10)
        parked(waiter)
        b.send(b"x")
        s.register(a, selectors.EVENT_READ, "late")
        os.write(w, b"x")  # wakes it; the check sees both
        ready = waiter.result(timeout=10)
        assert sorted(k.fd for k, _ in ready) == sorted([r, a.fileno()])


def test_selector_with_a_regular_file_is_ready_at_once(tmp_path: Any) -> None:
    """Like PollSelector (EpollSelector refuses regular files with PermissionError)."""
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with open(path, "rb") as f, green.DefaultSelector() as s:
        s.register(f, selectors.EVENT_READ)
        assert [(k.fileobj, ev) for k, ev in s.select(5)] == [(f, selectors.EVENT_READ)]
    assert waiting() == 0
