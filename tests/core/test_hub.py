"""The hub's parts: the timer heap, fd waits on the netpoller, other OS threads, misuse."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time

import pytest

import greensched
from greensched import Event, HubError, spawn
from greensched._core._hub import get_hub
from greensched._core._timers import TimerHeap
from greensched.testing import MockClock

# -- the timer heap (pure data) --------------------------------------------------------------


def test_timer_heap_fires_in_deadline_then_fifo_order() -> None:
    heap = TimerHeap()
    fired: list[str] = []
    for deadline, tag in [(3.0, "c"), (1.0, "a1"), (2.0, "b"), (1.0, "a2")]:
        heap.schedule(deadline, fired.append, tag)
    assert heap.next_deadline() == 1.0
    for callback, arg in heap.pop_due(2.5):
        callback(arg)
    assert fired == ["a1", "a2", "b"]
    assert len(heap) == 1 and heap.next_deadline() == 3.0


def test_timer_heap_cancel_is_lazy_and_bounded() -> None:
    """Cancelled entries never fire, and the heap is rebuilt before they pile up."""
    heap = TimerHeap()
    handles = [heap.schedule(float(i), lambda _: None) for i in range(1000)]
    keep = heap.schedule(5000.0, lambda _: None)
    for handle in handles:
        heap.cancel(handle)
        heap.cancel(handle)  # twice is harmless
    assert len(heap) == 1
    assert len(heap._heap) < 200  # compacted, not 1001 entries
    assert heap.next_deadline() == 5000.0
    assert heap.pop_due(4999.0) == []
    heap.cancel(keep)
    assert heap.next_deadline() is None


def test_cancel_after_fire_is_a_no_op() -> None:
    heap = TimerHeap()
    handle = heap.schedule(1.0, lambda _: None)
    assert len(heap.pop_due(1.0)) == 1
    heap.cancel(handle)
    assert len(heap) == 0


# -- fd waits -------------------------------------------------------------------------------------


def test_wait_readable_parks_until_data_arrives() -> None:
    """A reader parks on the netpoller; a writer in another green thread wakes it."""
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        b.setblocking(False)
        waiting = Event()

        def reader() -> bytes:
            waiting.set()
            assert greensched.wait_readable(a.fileno(), timeout=5)
            return a.recv(100)

        thread = spawn(reader)
        waiting.wait()
        greensched.sleep(0)  # the reader goes on to its wait (it is next in the run queue)
        assert thread.state == "PARKED"  # really parked, on the fd
        b.send(b"ping")
        assert thread.result() == b"ping"
    assert get_hub()._netpoll.waiting == 0  # nothing left registered


def test_wait_readable_timeout_returns_false() -> None:
    r, w = os.pipe()
    try:
        start = time.monotonic()
        assert greensched.wait_readable(r, timeout=0.05) is False
        assert 0.04 <= time.monotonic() - start < 2.0
        assert greensched.wait_readable(r, timeout=0) is False
        assert get_hub()._netpoll.waiting == 0
    finally:
        os.close(r)
        os.close(w)


def test_wait_writable_and_readable_on_one_fd_at_once() -> None:
    """One reader and one writer may wait on the same fd."""
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        reader = spawn(greensched.wait_readable, a.fileno(), 5)
        assert greensched.wait_writable(a.fileno(), 5) is True
        b.send(b"x")
        assert reader.result() is True


def test_two_readers_of_one_fd_get_a_clear_error() -> None:
    r, w = os.pipe()
    try:
        first = spawn(greensched.wait_readable, r, 5)
        greensched.sleep(0)
        with pytest.raises(greensched.FdBusyError, match="already waiting to read fd"):
            greensched.wait_readable(r, 5)
        os.write(w, b"x")
        assert first.result() is True
    finally:
        os.close(r)
        os.close(w)


def test_closing_a_watched_fd_wakes_the_waiter_with_ebadf() -> None:
    """notify_fd_closed wakes waiters with OSError(EBADF) and unregisters the fd."""
    r, w = os.pipe()
    try:
        waiter = spawn(greensched.wait_readable, r, 30)
        greensched.sleep(0)
        greensched.notify_fd_closed(r)
        os.close(r)
        with pytest.raises(OSError) as info:
            waiter.result(timeout=5)
        assert info.value.errno == errno.EBADF
        assert "closed while this green thread waited" in str(info.value)
        assert get_hub()._netpoll.waiting == 0
    finally:
        os.close(w)


def test_killing_an_fd_waiter_leaves_nothing_registered() -> None:
    r, w = os.pipe()
    try:
        waiter = spawn(greensched.wait_readable, r, 30)
        greensched.sleep(0)
        assert get_hub()._netpoll.waiting == 1
        waiter.kill()
        assert get_hub()._netpoll.waiting == 0
    finally:
        os.close(r)
        os.close(w)


def test_fd_number_reused_after_close_without_notify() -> None:
    """A new file with the number of one closed behind our back can still be waited on."""
    r, w = os.pipe()
    waiter = spawn(greensched.wait_readable, r, 0.05)
    greensched.sleep(0)
    os.close(r)  # no notify_fd_closed: the selector keeps a stale entry
    os.close(w)
    assert waiter.result() is False
    r2, w2 = os.pipe()
    try:
        os.write(w2, b"x")
        assert greensched.wait_readable(r2, 5) is True
    finally:
        os.close(r2)
        os.close(w2)


# -- other OS threads -------------------------------------------------------------------------


def test_call_soon_threadsafe_from_an_os_thread_wakes_the_hub() -> None:
    """A real OS thread hands a result back; the parked green thread gets it promptly."""
    hub = get_hub()
    done = Event()
    box: list[str] = []

    def finish(value: str) -> None:
        box.append(value)
        hub.release()
        done.set()

    def os_thread() -> None:
        time.sleep(0.05)  # the real, blocking sleep of a real OS thread
        hub.call_soon_threadsafe(finish, "from OS thread")

    hub.hold()  # tell the hub a callback is coming: waiting for it is not a deadlock
    threading.Thread(target=os_thread).start()
    assert done.wait(5)
    assert box == ["from OS thread"]


def test_a_green_primitive_used_from_another_os_threads_hub_is_an_error() -> None:
    event = Event()
    event_waiter = spawn(event.wait)
    greensched.sleep(0)
    errors: list[BaseException] = []

    def os_thread() -> None:
        try:
            event._waiters.park(1)  # type: ignore[union-attr]
        except BaseException as exc:  # noqa: BLE001 - we want to see exactly what it raised
            errors.append(exc)

    t = threading.Thread(target=os_thread)
    t.start()
    t.join()
    assert len(errors) == 1 and isinstance(errors[0], HubError)
    assert "other than the one whose hub" in str(errors[0])
    event.set()
    event_waiter.join()


def test_other_os_threads_run_their_own_cooperative_hub() -> None:
    """A second OS thread can run green threads of its own (without preemption)."""
    results: list[object] = []

    def os_thread() -> None:
        q = greensched.Queue()
        threads = [spawn(lambda n=n: q.put(n * n)) for n in range(5)]
        for t in threads:
            t.join()
        results.append(sorted(q.get() for _ in range(5)))
        results.append(greensched.get_preemption())
        results.append(greensched.current_thread().name)

    t = threading.Thread(target=os_thread)
    t.start()
    t.join()
    assert results[0] == [0, 1, 4, 9, 16]
    assert results[1] == (False, 0.0)
    assert str(results[2]).startswith("Main-")


# -- misuse --------------------------------------------------------------------------------------


def test_blocking_inside_a_hub_callback_is_reported_in_main(autojump: MockClock) -> None:
    """A timer callback that tries to block gets HubError, raised in the main thread."""
    hub = get_hub()
    hub.call_later(0.01, lambda _arg: greensched.sleep(1))
    with pytest.raises(HubError, match="inside the hub"):
        greensched.sleep(1)
    greensched.sleep(0.02)  # the runtime is still usable afterwards


def test_a_failing_timer_callback_does_not_lose_the_next_one(autojump: MockClock) -> None:
    hub = get_hub()
    fired: list[int] = []

    def boom(_arg: object) -> None:
        raise ValueError("callback failed")

    hub.call_later(0.01, boom)
    hub.call_later(0.01, fired.append, 2)
    with pytest.raises(ValueError, match="callback failed"):
        greensched.sleep(0.5)
    greensched.sleep(0.02)
    assert fired == [2]
