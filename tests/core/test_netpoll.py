"""The netpoller keeps an fd registered between waits for an owner (lazy deregistration).

Real fds and sockets throughout; the selector's calls are counted by wrapping the
netpoller's own selector instance.
"""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import greensched
from greensched import spawn
from greensched._core._hub import get_hub
from greensched._core._netpoll import EVENT_READ, EVENT_WRITE, Netpoller
from greensched.net import socket as gsocket
from tests.util import parked


class Owner:
    """Stands for a green socket: an object that vouches for its fd."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


def netpoll() -> Netpoller:
    return get_hub()._netpoll


def registered_events(fd: int) -> int:
    """The events the netpoller's selector watches ``fd`` for (0: not registered)."""
    try:
        return netpoll()._selector.get_key(fd).events
    except KeyError:
        return 0


@pytest.fixture
def calls() -> Iterator[Counter[str]]:
    """Counts register/modify/unregister calls on the hub's selector."""
    selector = netpoll()._selector
    counts: Counter[str] = Counter()

    def counting(name: str) -> Callable[..., Any]:
        method = getattr(selector, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return method(*args, **kwargs)

        return wrapper

    for name in ("register", "modify", "unregister"):
        setattr(selector, name, counting(name))
    try:
        yield counts
    finally:
        for name in ("register", "modify", "unregister"):
            selector.__dict__.pop(name, None)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        yield a, b
        for s in (a, b):
            if s.fileno() >= 0:
                greensched.notify_fd_closed(s.fileno())


def wait_then_send(fd: int, peer: socket.socket, owner: Any, writing: bool = False) -> bool:
    """Park on ``fd`` for ``owner`` in a green thread while the main one sends to it."""
    hub = get_hub()
    wait = hub.wait_writable if writing else hub.wait_readable
    waiter = spawn(wait, fd, 5, owner)
    parked(waiter)
    peer.send(b"x")
    return waiter.result(timeout=5)


# -- kept between waits ------------------------------------------------------------------------


def test_an_owners_registration_is_kept_between_waits(pair: Any, calls: Counter[str]) -> None:
    a, b = pair
    owner = Owner(a.fileno())
    assert wait_then_send(a.fileno(), b, owner) is True
    assert calls == Counter(register=1)
    assert registered_events(a.fileno()) == EVENT_READ  # still registered...
    assert netpoll().waiting == 0  # ...but nobody counts as waiting: no deadlock blindness
    for _ in range(5):
        assert a.recv(10) == b"x"
        assert wait_then_send(a.fileno(), b, owner) is True
    assert calls == Counter(register=1)  # five more waits, no selector call at all


def test_without_an_owner_the_fd_is_unregistered_when_its_waiter_leaves(pair: Any,
                                                                        calls: Counter[str]) -> None:
    a, b = pair
    assert wait_then_send(a.fileno(), b, None) is True
    assert registered_events(a.fileno()) == 0
    assert a.fileno() not in netpoll()._fds
    assert calls == Counter(register=1, unregister=1)


def test_adding_the_other_event_widens_a_kept_registration(pair: Any, calls: Counter[str]) -> None:
    a, b = pair
    owner = Owner(a.fileno())
    assert wait_then_send(a.fileno(), b, owner) is True
    assert a.recv(10) == b"x"  # else its readiness, with no reader, would narrow it
    assert get_hub().wait_writable(a.fileno(), 5, owner) is True
    assert registered_events(a.fileno()) == EVENT_READ | EVENT_WRITE
    assert calls == Counter(register=1, modify=1)


def test_notify_fd_closed_drops_a_kept_registration(pair: Any) -> None:
    a, b = pair
    assert wait_then_send(a.fileno(), b, Owner(a.fileno())) is True
    greensched.notify_fd_closed(a.fileno())
    assert registered_events(a.fileno()) == 0
    assert a.fileno() not in netpoll()._fds


def test_a_killed_waiter_leaves_the_registration_kept_and_nothing_waiting(pair: Any) -> None:
    a, _ = pair
    owner = Owner(a.fileno())
    waiter = spawn(get_hub().wait_readable, a.fileno(), 30, owner)
    parked(waiter)
    assert netpoll().waiting == 1
    waiter.kill()
    assert netpoll().waiting == 0
    assert registered_events(a.fileno()) == EVENT_READ
    greensched.notify_fd_closed(a.fileno())
    assert netpoll()._fds == {}


def test_a_timed_out_wait_keeps_the_registration_and_the_next_one_works(pair: Any) -> None:
    a, b = pair
    owner = Owner(a.fileno())
    assert get_hub().wait_readable(a.fileno(), 0.02, owner) is False
    assert registered_events(a.fileno()) == EVENT_READ
    assert wait_then_send(a.fileno(), b, owner) is True


# -- events nobody waits for ---------------------------------------------------------------


def test_an_event_with_no_waiter_unregisters_the_fd_once(pair: Any, calls: Counter[str]) -> None:
    """Level-triggered: a readable fd nobody waits on must not make every poll return."""
    a, b = pair
    owner = Owner(a.fileno())
    assert wait_then_send(a.fileno(), b, owner) is True  # a stays readable: b"x" unread
    assert netpoll().poll(0) == []
    assert registered_events(a.fileno()) == 0
    assert a.fileno() not in netpoll()._fds
    start = time.monotonic()
    assert netpoll().poll(0.05) == []
    assert time.monotonic() - start >= 0.04  # it really slept: nothing left to report
    assert wait_then_send(a.fileno(), b, owner) is True  # the next wait registers again
    assert calls == Counter(register=2, unregister=1)


def test_an_event_with_no_waiter_narrows_to_what_is_still_waited_for(pair: Any) -> None:
    a, b = pair
    owner = Owner(a.fileno())
    hub = get_hub()
    assert wait_then_send(a.fileno(), b, owner) is True  # READ kept; a readable now
    fill(a)  # so that a writer really waits
    writer = spawn(hub.wait_writable, a.fileno(), 5, owner)
    parked(writer)
    assert registered_events(a.fileno()) == EVENT_READ | EVENT_WRITE
    assert netpoll().poll(0) == []  # readable, but nobody reads: narrowed to WRITE
    assert registered_events(a.fileno()) == EVENT_WRITE
    drain(b)
    assert writer.result(timeout=5) is True


def fill(sock: socket.socket) -> None:
    try:
        while True:
            sock.send(b"\0" * 65536)
    except BlockingIOError:
        pass


def drain(sock: socket.socket) -> None:
    try:
        while sock.recv(1 << 20):
            pass
    except BlockingIOError:
        pass


# -- fd numbers reused -----------------------------------------------------------------------


def test_a_reused_fd_number_is_registered_afresh_for_a_new_owner(calls: Counter[str]) -> None:
    """Closed behind our back (no notify): the kept registration is not trusted."""
    r, w = os.pipe()
    owner = Owner(r)
    waiter = spawn(get_hub().wait_readable, r, 5, owner)
    parked(waiter)
    os.write(w, b"x")
    assert waiter.result() is True
    assert registered_events(r) == EVENT_READ
    os.close(r)  # the kernel forgets it; our selector does not
    os.close(w)
    r2, w2 = os.pipe()
    try:
        assert r2 == r  # the number is reused
        for new_owner in (Owner(r2), None):
            waiter = spawn(get_hub().wait_readable, r2, 5, new_owner)
            parked(waiter)
            os.write(w2, b"y")
            assert waiter.result() is True
            os.read(r2, 10)
    finally:
        greensched.notify_fd_closed(r2)
        os.close(r2)
        os.close(w2)


def test_an_owner_collected_unnoticed_with_its_file_alive_elsewhere_does_not_spin() -> None:
    """The kernel keeps reporting a closed fd whose description lives on (a dup): we
    cannot unregister it by number any more, so the selector is rebuilt, and the
    waits on other fds go on across it."""
    a, b = socket.socketpair()
    other_r, other_w = os.pipe()  # a wait that must survive the rebuild
    gone_r, gone_w = os.pipe()  # a wait whose fd is closed without notify
    owner = Owner(a.fileno())
    fd = a.fileno()
    waiter = spawn(get_hub().wait_readable, fd, 5, owner)
    parked(waiter)
    b.send(b"x")
    assert waiter.result() is True
    assert a.recv(10) == b"x"  # not readable: the registration stays kept, untouched
    other = spawn(get_hub().wait_readable, other_r, 5, Owner(other_r))
    gone = spawn(get_hub().wait_readable, gone_r, 5)
    parked(other)
    parked(gone)
    keep = os.dup(fd)  # the file lives on under another number
    a.close()  # a plain socket: closes fd without telling the hub
    os.close(gone_r)  # behind our back too: the rebuild cannot register it again
    del owner, waiter
    gc.collect()
    selector = netpoll()._selector
    b.send(b"y")  # the stale kernel entry is readable now, under the old number
    try:
        # The hub's next poll rebuilds the selector and wakes `gone` (its syscall would
        # then say EBADF); `other` stays parked, registered in the new selector.
        assert gone.result(timeout=5) is True
        assert netpoll()._selector is not selector  # rebuilt
        start = time.monotonic()
        assert netpoll().poll(0.05) == []
        assert time.monotonic() - start >= 0.04  # no busy loop
        assert list(netpoll()._fds) == [other_r]
        os.write(other_w, b"z")
        assert other.result(timeout=5) is True
        greensched.notify_fd_closed(other_r)
        assert netpoll()._fds == {}
        r, w = os.pipe()  # the old number, now a pipe: waiting on it works
        try:
            waiter = spawn(get_hub().wait_readable, r, 5, Owner(r))
            parked(waiter)
            os.write(w, b"z")
            assert waiter.result() is True
        finally:
            greensched.notify_fd_closed(r)
            os.close(r)
            os.close(w)
    finally:
        for f in (keep, other_r, other_w, gone_w):
            os.close(f)
        b.close()


def test_a_kept_fd_closed_from_another_os_thread_does_not_spin() -> None:
    """Closed from another OS thread, a green socket tells that thread's hub, not ours;
    with its file alive elsewhere (a dup), the kernel keeps reporting it to us."""
    a, b = gsocket.socketpair()
    fd = a.fileno()
    reader = spawn(a.recv, 10)
    parked(reader)
    b.sendall(b"x")
    assert reader.result() == b"x"
    assert registered_events(fd) == EVENT_READ  # kept for `a`
    keep = os.dup(fd)
    closer = threading.Thread(target=a.close)
    closer.start()
    closer.join()
    selector = netpoll()._selector
    try:
        b.sendall(b"y")  # the file behind `keep` is readable, still watched under `fd`
        assert netpoll().poll(0) == []  # an event nobody waits for, on a closed file
        assert netpoll()._selector is not selector  # rebuilt
        start = time.monotonic()
        assert netpoll().poll(0.05) == []
        assert time.monotonic() - start >= 0.04  # no busy loop
    finally:
        os.close(keep)
        b.close()


# -- the green socket as the owner ---------------------------------------------------------


def test_a_green_socket_keeps_its_registration_and_drops_it_on_close() -> None:
    a, b = gsocket.socketpair()
    with b:
        fd = a.fileno()
        for i in range(3):
            reader = spawn(a.recv, 10)
            parked(reader)
            b.sendall(b"%d" % i)
            assert reader.result() == b"%d" % i
            assert registered_events(fd) == EVENT_READ
        a.close()
        assert registered_events(fd) == 0
        assert fd not in netpoll()._fds


def test_a_green_socket_collected_unclosed_drops_its_registration() -> None:
    a, b = gsocket.socketpair()
    with b:
        fd = a.fileno()
        reader = spawn(a.recv, 10)
        parked(reader)
        b.sendall(b"x")
        assert reader.result() == b"x"
        assert registered_events(fd) == EVENT_READ
        with pytest.warns(ResourceWarning):
            del a, reader
            gc.collect()
        assert fd not in netpoll()._fds
        assert registered_events(fd) == 0


# -- watchers and waiters on one fd -------------------------------------------------------


def test_a_watcher_and_an_owners_waiter_share_one_fd(pair: Any) -> None:
    a, b = pair
    owner = Owner(a.fileno())
    fd = a.fileno()
    assert wait_then_send(fd, b, owner) is True  # kept for owner
    a.recv(10)
    watcher = spawn(greensched.wait_fds, [fd], [], 5)  # no owner: registered afresh
    reader = spawn(get_hub().wait_readable, fd, 5, owner)
    parked(watcher)
    parked(reader)
    assert netpoll().waiting == 1
    b.send(b"x")
    assert watcher.result(timeout=5) is True
    assert reader.result(timeout=5) is True
    assert registered_events(fd) == 0  # nobody vouched for it once the watcher joined
    assert netpoll().waiting == 0


# -- fork ------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
# 3.12+ warns that fork() in a multi-threaded process may deadlock the child. This test
# process has OS threads on purpose: pytest-timeout's timer (its thread method; SIGALRM is
# the scheduler's) and to_thread workers from earlier tests. The child takes none of
# their locks: it uses its own hub and leaves with os._exit().
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_gets_a_fresh_netpoller_and_the_parent_keeps_its_own(pair: Any) -> None:
    a, b = pair
    owner = Owner(a.fileno())
    fd = a.fileno()
    assert wait_then_send(fd, b, owner) is True
    a.recv(10)
    parent_netpoll = netpoll()
    pid = os.fork()
    if pid == 0:  # the child: its own netpoller, nothing registered; waiting works
        code = 1
        try:
            if netpoll() is not parent_netpoll and netpoll()._fds == {}:
                b.send(b"c")
                if get_hub().wait_readable(fd, 5, owner) and a.recv(10) == b"c":
                    code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert netpoll() is parent_netpoll
    assert registered_events(fd) == EVENT_READ
    assert wait_then_send(fd, b, owner) is True
    assert a.recv(10) == b"x"
