"""Hub.wait_fds: shared watchers on many fds, next to the exclusive readers and writers."""

from __future__ import annotations

import errno
import os
import select
import selectors
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

import greensched
from greensched import Event, Timeout, TimeoutExpired, spawn, wait_fds
from greensched._core._hub import get_hub
from tests.util import drain, fill, parked


def registered_events(fd: int) -> int:
    """The events the netpoller's selector watches ``fd`` for (0: not registered)."""
    try:
        return get_hub()._netpoll._selector.get_key(fd).events
    except KeyError:
        return 0


def waiting() -> int:
    return get_hub()._netpoll.waiting


# -- waking up -----------------------------------------------------------------------


def test_wakes_when_one_of_several_fds_becomes_readable(pipe: tuple[int, int]) -> None:
    r, w = pipe
    r2, w2 = os.pipe()
    try:
        before = waiting()
        watcher = spawn(wait_fds, [r, r2], [], 5)
        parked(watcher)
        assert waiting() == before + 2
        os.write(w2, b"x")
        assert watcher.result() is True
        assert waiting() == before
    finally:
        os.close(r2)
        os.close(w2)


def test_wakes_when_a_writer_fd_becomes_writable() -> None:
    a, b = socket.socketpair()
    with a, b:
        fill(a)
        assert select.select([], [a], [], 0)[1] == []
        watcher = spawn(wait_fds, [], [a], 5)
        parked(watcher)
        drain(b)
        assert watcher.result() is True
    assert waiting() == 0


def test_an_fd_ready_before_the_wait_wakes_at_once(pipe: tuple[int, int]) -> None:
    """Level-triggered: readiness that came before the wait is not lost."""
    r, w = pipe
    os.write(w, b"x")
    start = time.monotonic()
    assert wait_fds([r], [], 5) is True
    assert time.monotonic() - start < 1.0
    assert wait_fds([], [w], 5) is True  # an empty pipe is writable


def test_accepts_objects_with_fileno_and_duplicates() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.send(b"x")
        assert wait_fds([a, a.fileno(), a], [], 5) is True
    assert waiting() == 0


def test_a_hang_up_counts_as_ready() -> None:
    a, b = socket.socketpair()
    with a:
        watcher = spawn(wait_fds, [a], [], 5)
        parked(watcher)
        b.close()
        assert watcher.result() is True


# -- timeouts --------------------------------------------------------------------------


def test_timeout_returns_false(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    start = time.monotonic()
    assert wait_fds([r], [], 0.05) is False
    assert 0.04 <= time.monotonic() - start < 2.0
    assert waiting() == 0


def test_zero_or_negative_timeout_returns_false_without_parking(pipe: tuple[int, int]) -> None:
    r, w = pipe
    os.write(w, b"x")  # even a ready fd: the caller checks readiness itself
    hub = get_hub()
    switches = hub.switches
    assert wait_fds([r], [], 0) is False
    assert wait_fds([r], [], -1) is False
    assert hub.switches == switches
    assert waiting() == 0


def test_no_fds_is_a_sleep() -> None:
    start = time.monotonic()
    assert wait_fds([], [], 0.05) is False
    assert 0.04 <= time.monotonic() - start < 2.0


def test_a_timeout_context_interrupts_it_and_leaves_nothing(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    with pytest.raises(TimeoutExpired):
        with Timeout(0.05):
            wait_fds([r], [r], None)
    assert waiting() == 0


# -- sharing an fd ---------------------------------------------------------------------


def test_many_watchers_of_one_fd_all_wake(pipe: tuple[int, int]) -> None:
    r, w = pipe
    watchers = [spawn(wait_fds, [r], [], 5) for _ in range(50)]
    for thread in watchers:
        parked(thread)
    assert waiting() == 1
    os.write(w, b"x")
    assert [t.result() for t in watchers] == [True] * 50
    assert waiting() == 0


def test_watchers_coexist_with_the_exclusive_reader(pipe: tuple[int, int]) -> None:
    """A reader (wait_readable) and watchers share the fd; all wake; the reader stays exclusive."""
    r, w = pipe
    reader = spawn(greensched.wait_readable, r, 5)
    parked(reader)
    watchers = [spawn(wait_fds, [r], [], 5) for _ in range(3)]
    for thread in watchers:
        parked(thread)
    with pytest.raises(RuntimeError, match="already waiting to read fd"):
        greensched.wait_readable(r, 5)  # watchers or not, still one reader at a time
    os.write(w, b"x")
    assert reader.result() is True
    assert [t.result() for t in watchers] == [True] * 3
    assert waiting() == 0


def test_registration_is_the_union_of_reader_and_watchers() -> None:
    a, b = socket.socketpair()
    with a, b:
        fill(a)
        reader = spawn(greensched.wait_readable, a.fileno(), 5)
        parked(reader)
        assert registered_events(a.fileno()) == selectors.EVENT_READ
        watcher = spawn(wait_fds, [], [a], 5)
        parked(watcher)
        assert registered_events(a.fileno()) == selectors.EVENT_READ | selectors.EVENT_WRITE
        watcher.kill()
        assert registered_events(a.fileno()) == selectors.EVENT_READ  # the reader's alone again
        drain(b)
        b.send(b"x")
        assert reader.result() is True
        assert registered_events(a.fileno()) == 0
    assert waiting() == 0


def test_reader_leaving_keeps_the_watchers_registered(pipe: tuple[int, int]) -> None:
    r, w = pipe
    reader = spawn(greensched.wait_readable, r, 5)
    parked(reader)
    watcher = spawn(wait_fds, [r], [], 5)
    parked(watcher)
    reader.kill()
    assert registered_events(r) == selectors.EVENT_READ
    os.write(w, b"x")
    assert watcher.result() is True
    assert waiting() == 0


def test_watching_one_fd_for_read_and_write_wakes_once() -> None:
    a, b = socket.socketpair()
    with a, b:
        fill(a)
        watcher = spawn(wait_fds, [a], [a], 5)
        parked(watcher)
        b.send(b"x")
        drain(b)
        assert watcher.result() is True
    assert waiting() == 0


# -- leaving nothing behind ----------------------------------------------------------------


def test_killing_a_watcher_leaves_nothing_registered(pipe: tuple[int, int]) -> None:
    r, w = pipe
    a, b = socket.socketpair()
    with a, b:
        fill(a)
        other = spawn(greensched.wait_readable, r, 30)  # someone else's wait stays as it was
        parked(other)
        before = waiting()
        watcher = spawn(wait_fds, [r, a], [w, a], 30)
        parked(watcher)
        assert waiting() == before + 2
        watcher.kill()
        assert waiting() == before
        assert registered_events(r) == selectors.EVENT_READ
        assert registered_events(a.fileno()) == 0
        other.kill()
    assert waiting() == 0


def test_a_killed_watcher_woken_in_the_same_pass_leaves_nothing(pipe: tuple[int, int]) -> None:
    """Woken by its fd and killed before it ran: the kill wins, the fds are let go."""
    r, w = pipe
    watcher = spawn(wait_fds, [r], [], 30)
    parked(watcher)
    os.write(w, b"x")
    watcher.kill(block=False)
    watcher.join(5)
    assert watcher.done()
    assert waiting() == 0


# -- closing a watched fd ---------------------------------------------------------------


def test_notify_fd_closed_wakes_watchers_with_ebadf(pipe: tuple[int, int]) -> None:
    r, w = pipe
    r2, w2 = os.pipe()
    try:
        reader = spawn(greensched.wait_readable, r, 30)
        parked(reader)
        watchers = [spawn(wait_fds, [r, r2], [], 30) for _ in range(3)]
        for thread in watchers:
            parked(thread)
        greensched.notify_fd_closed(r)
        os.close(r)
        for thread in [reader, *watchers]:
            with pytest.raises(OSError) as info:
                thread.result(timeout=5)
            assert info.value.errno == errno.EBADF
        assert waiting() == 0  # r2's watchers went away too
    finally:
        os.close(r2)
        os.close(w2)


def test_fd_number_reused_under_a_stale_waiter() -> None:
    """A watcher of a new file whose number a closed-behind-our-back fd still holds."""
    r, w = os.pipe()
    stale = spawn(wait_fds, [r], [], 30)
    parked(stale)
    os.close(r)  # no notify_fd_closed: the kernel forgets r, the netpoller does not
    os.close(w)
    a, b = socket.socketpair()  # one of them takes r's number
    with a, b:
        fresh = a if a.fileno() == r else b
        assert fresh.fileno() == r
        # The mask grows READ -> READ|WRITE on a number the kernel no longer watches.
        assert wait_fds([], [fresh], 5) is True
        stale.kill()
    assert waiting() == 0


# -- invalid fds: the stdlib select's errors ---------------------------------------------------


def stdlib_error(call: Callable[[], Any]) -> BaseException:
    with pytest.raises(BaseException) as info:
        call()
    return info.value


class Fileno:
    def __init__(self, value: Any) -> None:
        self.value = value

    def fileno(self) -> Any:
        return self.value


@pytest.mark.parametrize(
    "bad",
    [-1, "3", 1.5, object(), Fileno("x"), Fileno(-5), Fileno(2**40), 2**40],
    ids=["negative", "str", "float", "object", "fileno-str", "fileno-negative", "fileno-huge", "huge"],
)
def test_bad_fds_raise_what_select_raises(bad: Any, pipe: tuple[int, int]) -> None:
    r, _ = pipe
    expected = stdlib_error(lambda: select.select([r, bad], [], [], 0))
    for readers, writers in (([r, bad], []), ([r], [bad])):
        got = stdlib_error(lambda: wait_fds(readers, writers, 5))
        assert type(got) is type(expected) and str(got) == str(expected)
    assert waiting() == 0


def test_a_closed_fd_raises_ebadf_and_registers_nothing(pipe: tuple[int, int]) -> None:
    r, w = pipe
    dead_r, dead_w = os.pipe()
    os.close(dead_r)
    os.close(dead_w)
    expected = stdlib_error(lambda: select.select([r, dead_r], [], [], 0))
    assert isinstance(expected, OSError) and expected.errno == errno.EBADF
    with pytest.raises(OSError) as info:
        wait_fds([r], [w, dead_r], 5)  # r and w were registered first: rolled back
    assert info.value.errno == errno.EBADF
    assert waiting() == 0


def test_a_regular_file_is_always_ready(tmp_path: Any, pipe: tuple[int, int]) -> None:
    """epoll refuses regular files (EPERM); select and poll call them always ready."""
    r, _ = pipe
    path = tmp_path / "f"
    path.write_bytes(b"data")
    with open(path, "rb") as f:
        assert select.select([f], [], [], 0)[0] == [f]
        start = time.monotonic()
        assert wait_fds([r, f], [], 5) is True
        assert wait_fds([], [f], 5) is True
        assert time.monotonic() - start < 1.0
    assert waiting() == 0


def test_from_the_hub_it_is_a_hub_error(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    hub = get_hub()
    hub.call_later(0.01, lambda _arg: wait_fds([r], [], 1))
    with pytest.raises(greensched.HubError, match="inside the hub"):
        greensched.sleep(1)
    assert waiting() == 0


def test_other_threads_run_while_it_waits(pipe: tuple[int, int]) -> None:
    r, w = pipe
    ticks: list[int] = []
    parked_now = Event()

    def ticker() -> None:
        parked_now.wait()
        for i in range(5):
            ticks.append(i)
            greensched.sleep(0.001)
        os.write(w, b"x")

    thread = spawn(ticker)
    waiter = spawn(wait_fds, [r], [], 5)
    parked(waiter)
    parked_now.set()
    assert waiter.result() is True
    assert ticks == [0, 1, 2, 3, 4]
    thread.join()
