"""Misuse gets an error that says what happened and what to do, and the runtime stays usable.

Each test makes one mistake a user could make, checks the exception type and the
words of its message, then checks that green threads still run, sleep and hand off
(`assert_still_usable`). Other misuse tests live next to the feature they misuse:
blocking inside a hub callback (test_hub.py), joining oneself (test_threads.py),
bad GREENSCHED_* variables (test_preempt.py), conflicting `patch_all()` calls
(monkey/test_patch_all.py).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import pytest

import greensched
from greensched import Event, HubError, Lock, Queue, spawn


def assert_still_usable() -> None:
    """Threads start, sleep, hand a lock and an item to each other, and finish."""
    lock, q = Lock(), Queue()
    lock.acquire()

    def worker() -> int:
        with lock:
            q.put("item")
        greensched.sleep(0.001)
        return 42

    t = spawn(worker)
    greensched.sleep(0)
    lock.release()
    assert q.get(timeout=5) == "item"
    assert t.result(timeout=5) == 42


@pytest.mark.parametrize(
    ("seconds", "error", "words"),
    [
        ("1", TypeError, "sleep() takes a number of seconds, not str"),
        (None, TypeError, "sleep() takes a number of seconds, not NoneType"),
        (-0.5, ValueError, "sleep length must be non-negative"),
        (math.nan, ValueError, "not NaN"),
    ],
)
def test_sleep_refuses_what_is_not_a_duration(seconds: object, error: type, words: str) -> None:
    with pytest.raises(error) as info:
        greensched.sleep(seconds)  # type: ignore[arg-type]
    assert words in str(info.value)
    assert_still_usable()


def test_set_preemption_refuses_a_non_boolean_switch() -> None:
    before = greensched.get_preemption()
    with pytest.raises(TypeError, match=r"takes True, False or None, not 'yes'"):
        greensched.set_preemption("yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a number of milliseconds"):
        greensched.set_preemption(slice_ms="fast")  # type: ignore[arg-type]
    assert greensched.get_preemption() == before  # nothing half-applied
    assert_still_usable()


def test_releasing_a_green_lock_from_another_os_thread_is_refused_and_changes_nothing() -> None:
    """Waking a hub's threads from a foreign OS thread would corrupt its run queue."""
    lock = Lock()
    lock.acquire()
    waiter = spawn(lock.acquire)
    greensched.sleep(0)  # the waiter is parked on the lock now
    errors: list[BaseException] = []

    def os_thread() -> None:
        try:
            lock.release()
        except BaseException as exc:  # noqa: BLE001 - we check exactly what it raised
            errors.append(exc)

    t = threading.Thread(target=os_thread)
    t.start()
    t.join()
    assert len(errors) == 1 and isinstance(errors[0], HubError), errors
    message = str(errors[0])
    assert "from an OS thread other than their own" in message
    assert "call_soon_threadsafe()" in message  # what to do instead
    assert lock.locked() and not waiter.done()  # the refused release changed nothing
    lock.release()  # from the right OS thread it is handed to the waiter
    waiter.join(timeout=5)
    assert waiter.done() and lock.locked()
    lock.release()
    assert_still_usable()


def _in_os_thread(fn: Callable[[], object]) -> BaseException | None:
    """What ``fn()`` raised in a new OS thread (None if nothing)."""
    errors: list[BaseException | None] = []
    t = threading.Thread(target=lambda: errors.append(_raised(fn)))
    t.start()
    t.join()
    return errors[0]


def test_setting_a_green_event_from_another_os_thread_is_refused_and_changes_nothing() -> None:
    event = Event()
    waiter = spawn(event.wait, 60)
    greensched.sleep(0)  # the waiter is parked on the event now
    error = _in_os_thread(event.set)
    assert isinstance(error, HubError) and "Event.wait()" in str(error), error
    assert not event.is_set() and not waiter.done()  # the refused set changed nothing
    event.set()  # from the right OS thread it wakes the waiter: at once, not at its timeout
    greensched.sleep(0)  # the woken waiter runs and returns
    assert waiter.done() and waiter.result() is True
    assert_still_usable()


def test_queue_calls_refused_from_another_os_thread_change_nothing() -> None:
    """A refused get loses no item, a refused put or task_done leaves the count as it was."""
    full: Queue[str] = Queue(maxsize=1)
    full.put("kept")
    putter = spawn(full.put, "second")  # parks: the queue is full
    greensched.sleep(0)
    assert isinstance(_in_os_thread(full.get), HubError)  # it would wake the putter
    assert full.qsize() == 1 and full.unfinished_tasks == 1 and not putter.done()
    assert full.get() == "kept"  # here the get wakes the putter into the freed slot
    putter.join(timeout=5)
    assert full.get() == "second"

    empty: Queue[str] = Queue()
    getter = spawn(empty.get)
    greensched.sleep(0)
    assert isinstance(_in_os_thread(lambda: empty.put("x")), HubError)
    assert empty.unfinished_tasks == 0 and empty.qsize() == 0 and not getter.done()
    empty.put("x")
    getter.join(timeout=5)
    assert getter.result() == "x"

    joined: Queue[str] = Queue()
    joined.put("job")
    joined.get()
    joiner = spawn(joined.join)
    greensched.sleep(0)
    assert isinstance(_in_os_thread(joined.task_done), HubError)
    assert joined.unfinished_tasks == 1 and not joiner.done()
    joined.task_done()
    greensched.sleep(0)
    assert joiner.done()
    assert_still_usable()


def test_a_deadlock_is_reported_and_the_runtime_goes_on() -> None:
    lock = Lock()
    lock.acquire()
    stuck = spawn(lock.acquire)
    with pytest.raises(greensched.DeadlockError) as info:
        lock.acquire()  # main waits for a lock only main could release
    assert "nothing can wake one" in str(info.value) and stuck.name in str(info.value)
    lock.release()  # main never got it: the release hands it to `stuck`
    stuck.join(timeout=5)
    assert stuck.done()
    lock.release()
    assert_still_usable()


def _raised(fn: object) -> BaseException | None:
    try:
        fn()  # type: ignore[operator]
    except BaseException as exc:  # noqa: BLE001
        return exc
    return None
