"""Lock, RLock, Condition, Event, Semaphore, BoundedSemaphore: stdlib parity, parking,
FIFO hand-offs, timeouts, and nothing lost when a waiter is killed or timed out."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import greensched
from greensched import (
    BoundedSemaphore,
    Condition,
    Event,
    GreenThread,
    Lock,
    RLock,
    Semaphore,
    spawn,
)

# -- helpers ---------------------------------------------------------------------------------


def wait_parked(*threads: GreenThread, or_done: bool = False, limit: float = 5.0) -> None:
    """Yield to the hub until every thread is parked (its wait has begun), or done."""
    deadline = time.monotonic() + limit
    greensched.sleep(0)
    while not all(t.state == "PARKED" or (or_done and t.done()) for t in threads):
        assert time.monotonic() < deadline, f"threads never parked: {threads}"
        greensched.sleep(0)


def taken_by_another(lock: Any) -> bool:
    """Can another green thread take ``lock`` right now? (It gives it back at once.)"""
    return bool(spawn(lambda: lock.acquire(False) and (lock.release() or True)).result())


def spawn_parked(fn: Callable[..., Any], *args: Any) -> GreenThread:
    """Spawn ``fn(*args)`` and return once it is parked: fixes the waiters' arrival order."""
    thread = spawn(fn, *args)
    wait_parked(thread)
    return thread


#: The primitives that hand a lock or a unit to the longest waiter.
LOCKLIKE = [pytest.param(Lock, id="Lock"), pytest.param(RLock, id="RLock"),
            pytest.param(lambda: Semaphore(1), id="Semaphore")]


def assert_waited(elapsed: float, timeout: float) -> None:
    assert timeout * 0.9 <= elapsed < timeout + 1.0, elapsed


def killed(thread: GreenThread) -> bool:
    """True if the thread ended by kill (result() says so)."""
    with pytest.raises(RuntimeError, match="was killed"):
        thread.result()
    return True


# -- same answers as threading for everything that does not wait ------------------------------


def _lock_calls(m: Any) -> list[Any]:
    lock = m.Lock()
    return [lock.acquire(), lock.locked(), lock.acquire(False), lock.acquire(timeout=0),
            lock.acquire(True, 0), lock.acquire(True, 0.0), lock.release(), lock.locked(),
            lock.__enter__(), lock.__exit__(None, None, None)]


def _rlock_calls(m: Any) -> list[Any]:
    rlock = m.RLock()
    out = [rlock.acquire(), rlock.acquire(False), rlock.acquire(timeout=0), rlock.__enter__()]
    out += [rlock.release() for _ in range(4)]
    return out


def _semaphore_calls(m: Any) -> list[Any]:
    sem = m.Semaphore(2)
    return [sem.acquire(), sem.acquire(False), sem.acquire(False), sem.acquire(timeout=0),
            sem.acquire(timeout=-1), sem.release(2), sem.acquire(), sem.__enter__(),
            sem.acquire(blocking=False)]


def _event_calls(m: Any) -> list[Any]:
    ev = m.Event()
    return [ev.is_set(), ev.wait(0), ev.wait(-1), ev.set(), ev.is_set(), ev.wait(), ev.wait(-1),
            ev.clear(), ev.is_set(), ev.wait(0.0)]


def _condition_calls(m: Any, lock: str) -> list[Any]:
    cond = m.Condition(getattr(m, lock)()) if lock else m.Condition()
    out = [cond.wait_for(lambda: "ready")]  # a true predicate needs no lock and no wait
    with cond:
        out += [cond.wait(0), cond.wait(-1), cond.wait_for(lambda: 0, 0),
                cond.wait_for(lambda: 5, 0), cond.notify(), cond.notify(3), cond.notify_all()]
    return out


PARITY: dict[str, Callable[[Any], Any]] = {
    "Lock calls": _lock_calls,
    "RLock calls": _rlock_calls,
    "Semaphore calls": _semaphore_calls,
    "Event calls": _event_calls,
    "Condition() calls": lambda m: _condition_calls(m, ""),
    "Condition(Lock()) calls": lambda m: _condition_calls(m, "Lock"),
    "Condition(RLock()) calls": lambda m: _condition_calls(m, "RLock"),
    "Lock.acquire(timeout=-2)": lambda m: m.Lock().acquire(timeout=-2),
    "Lock.acquire(False, 1)": lambda m: m.Lock().acquire(False, 1),
    "Lock.acquire(False, 0)": lambda m: m.Lock().acquire(False, 0),
    "Lock.release() unheld": lambda m: m.Lock().release(),
    "RLock.acquire(timeout=-2)": lambda m: m.RLock().acquire(timeout=-2),
    "RLock.acquire(False, 1)": lambda m: m.RLock().acquire(False, 1),
    "RLock.release() unheld": lambda m: m.RLock().release(),
    "Semaphore(-1)": lambda m: m.Semaphore(-1),
    "Semaphore.acquire(False, 1)": lambda m: m.Semaphore().acquire(False, 1),
    "Semaphore.release(0)": lambda m: m.Semaphore().release(0),
    "BoundedSemaphore over-release": lambda m: m.BoundedSemaphore(2).release(),
    "BoundedSemaphore.release(2) after one acquire":
        lambda m: (lambda s: (s.acquire(), s.release(2)))(m.BoundedSemaphore(2)),
    "Condition.wait unowned": lambda m: m.Condition().wait(0),
    "Condition.wait_for unowned": lambda m: m.Condition().wait_for(lambda: False, 0),
    "Condition.notify unowned": lambda m: m.Condition().notify(),
    "Condition.notify_all unowned": lambda m: m.Condition().notify_all(),
    "Condition(Lock()).wait unowned": lambda m: m.Condition(m.Lock()).wait(0),
}


def outcome(fn: Callable[[], Any]) -> tuple[Any, Any]:
    try:
        return ("returned", fn())
    except Exception as exc:
        return (type(exc), str(exc))


@pytest.mark.parametrize("case", list(PARITY))
def test_non_waiting_behaviour_matches_threading(case: str) -> None:
    """Return values, exception types and messages equal the stdlib's, call for call."""
    assert outcome(lambda: PARITY[case](greensched)) == outcome(lambda: PARITY[case](threading))


def test_bounded_semaphore_failed_release_changes_nothing() -> None:
    """A refused over-release leaves the count as it was."""
    sem = BoundedSemaphore(2)
    sem.acquire()
    with pytest.raises(ValueError, match="released too many times"):
        sem.release(2)
    assert [sem.acquire(False), sem.acquire(False)] == [True, False]


# -- blocking parks the caller and lets others run ----------------------------------------------


@pytest.mark.parametrize("factory", [*LOCKLIKE, pytest.param(lambda: BoundedSemaphore(1),
                                                              id="Bounded")])
def test_blocking_acquire_parks_until_released(factory: Callable[[], Any]) -> None:
    """A waiter parks while others keep running, and gets the lock/unit at release."""
    prim, log = factory(), []
    prim.acquire()
    w = spawn_parked(lambda: (prim.acquire(), log.append("waiter acquired"), prim.release()))
    log.append("holder still running")
    prim.release()
    w.join()
    assert log == ["holder still running", "waiter acquired"]
    assert prim.acquire(False) is True  # nothing leaked


TIMED_WAITS: dict[str, Callable[[Any, Any, Any, Any, Any], bool]] = {
    "Lock": lambda lock, rlock, sem, cond, ev: lock.acquire(timeout=0.1),
    "RLock": lambda lock, rlock, sem, cond, ev: rlock.acquire(True, 0.1),
    "Semaphore": lambda lock, rlock, sem, cond, ev: sem.acquire(timeout=0.1),
    "Condition": lambda lock, rlock, sem, cond, ev: cond.acquire() and cond.wait(0.1),
    "Event": lambda lock, rlock, sem, cond, ev: ev.wait(0.1),
}


@pytest.mark.parametrize("kind", list(TIMED_WAITS))
def test_wait_with_timeout_returns_false_after_timeout(kind: str) -> None:
    """Each timed wait gives up after about ``timeout`` seconds and returns False."""
    prims = Lock(), RLock(), Semaphore(0), Condition(), Event()
    prims[0].acquire()
    prims[1].acquire()  # owned by the main thread; the attempt runs in another thread

    def attempt() -> tuple[bool, float]:
        t0 = time.monotonic()
        return TIMED_WAITS[kind](*prims), time.monotonic() - t0

    got, elapsed = spawn(attempt).result()
    assert got is False
    assert_waited(elapsed, 0.1)
    assert prims[0].locked()


# -- FIFO hand-offs ---------------------------------------------------------------------------


@pytest.mark.parametrize("factory", LOCKLIKE)
def test_waiters_are_served_in_arrival_order(factory: Callable[[], Any]) -> None:
    """Released repeatedly, the lock/unit goes to the waiters in the order they arrived."""
    prim, order = factory(), []
    prim.acquire()

    def waiter(i: int) -> None:
        with prim:
            order.append(i)

    threads = [spawn_parked(waiter, i) for i in range(5)]
    prim.release()
    for t in threads:
        t.join()
    assert order == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("factory", LOCKLIKE)
def test_release_hands_off_to_waiter_even_if_releaser_reacquires(factory: Any) -> None:
    """No barging: the releaser cannot take back what it just handed to the longest waiter."""
    prim, order = factory(), []
    prim.acquire()

    def waiter() -> None:
        with prim:
            order.append("waiter")

    w = spawn_parked(waiter)
    prim.release()
    assert prim.acquire(False) is False  # already handed to the waiter
    prim.acquire()  # parks behind nobody: the waiter runs its section first
    order.append("releaser")
    prim.release()
    w.join()
    assert order == ["waiter", "releaser"]


def test_semaphore_release_n_wakes_n_waiters_in_order_and_keeps_the_rest() -> None:
    """release(n) hands one unit to each of the first waiters; spare units are counted."""
    sem, order = Semaphore(0), []
    threads = [spawn_parked(lambda i=i: (sem.acquire(), order.append(i)), i) for i in range(3)]
    sem.release(2)
    threads[0].join(), threads[1].join()
    assert order == [0, 1] and threads[2].state == "PARKED"
    sem.release(3)
    threads[2].join()
    assert order == [0, 1, 2]
    assert [sem.acquire(False) for _ in range(3)] == [True, True, False]


# -- nothing lost: killed waiters --------------------------------------------------------------


@pytest.mark.parametrize("factory", LOCKLIKE)
def test_killed_parked_waiter_is_removed_cleanly(factory: Callable[[], Any]) -> None:
    """Killing a parked waiter does not swallow a later hand-off: the others get it in order."""
    prim, order = factory(), []
    prim.acquire()

    def waiter(i: int) -> None:
        with prim:
            order.append(i)

    threads = [spawn_parked(waiter, i) for i in range(3)]
    threads[1].kill()
    assert killed(threads[1])
    prim.release()
    threads[0].join(), threads[2].join()
    assert order == [0, 2]
    assert prim.acquire(False) is True


@pytest.mark.parametrize("factory", LOCKLIKE)
@pytest.mark.parametrize("second_waiter", [False, True])
def test_handed_off_then_killed_before_running_loses_nothing(factory: Callable[[], Any],
                                                              second_waiter: bool) -> None:
    """A waiter killed after the hand-off but before it ran passes the lock/unit on
    (to the next waiter, or back to the primitive)."""
    prim, order = factory(), []
    prim.acquire()

    def waiter(i: int) -> None:
        with prim:
            order.append(i)

    first = spawn_parked(waiter, 1)
    second = spawn_parked(waiter, 2) if second_waiter else None
    prim.release()  # handed to `first`, which has not run yet
    first.kill()
    assert killed(first)
    if second is not None:
        second.join()
    assert order == ([2] if second_waiter else [])
    assert prim.acquire(False) is True  # free again, not leaked


# -- RLock ownership -----------------------------------------------------------------------------


def test_rlock_is_reentrant_and_held_until_fully_released() -> None:
    """Other threads cannot take an RLock until its owner released every level."""
    rlock = RLock()
    assert rlock.acquire() and rlock.acquire()
    assert taken_by_another(rlock) is False
    rlock.release()
    assert taken_by_another(rlock) is False
    rlock.release()
    assert taken_by_another(rlock) is True


def test_rlock_release_by_non_owner_is_runtime_error() -> None:
    """Only the owning green thread may release an RLock (message as in threading)."""
    rlock = RLock()
    rlock.acquire()
    with pytest.raises(RuntimeError, match="^cannot release un-acquired lock$"):
        spawn(rlock.release).result()
    rlock.release()  # the failed release did not change the count


def test_plain_lock_may_be_released_by_another_thread() -> None:
    """Unlike an RLock, a Lock has no owner: any green thread may release it."""
    lock = Lock()
    lock.acquire()
    spawn(lock.release).join()
    assert not lock.locked() and taken_by_another(lock)


# -- Condition -----------------------------------------------------------------------------------


@pytest.mark.parametrize("lock_factory", [None, Lock, RLock])
def test_condition_notify_n_and_notify_all_wake_in_fifo_order(lock_factory: Any) -> None:
    """notify(n) wakes exactly the n longest waiters; notify_all wakes the rest."""
    cond = Condition(lock_factory() if lock_factory else None)
    woken: list[int] = []

    def waiter(i: int) -> None:
        with cond:
            assert cond.wait() is True
            woken.append(i)

    threads = [spawn_parked(waiter, i) for i in range(5)]
    with cond:
        cond.notify(2)
    threads[0].join(), threads[1].join()
    assert woken == [0, 1]
    assert [t.state for t in threads[2:]] == ["PARKED"] * 3
    with cond:
        cond.notify_all()
    for t in threads:
        t.join()
    assert woken == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("lock_factory", [Lock, RLock])
def test_condition_wait_releases_and_reacquires_the_lock(lock_factory: Any) -> None:
    """wait() lets others take the lock; it returns only once the notifier released it."""
    cond, log = Condition(lock_factory()), []

    def waiter() -> None:
        with cond:
            cond.wait()
            log.append("waiter back")

    w = spawn_parked(waiter)
    with cond:  # possible only because wait() released the lock
        cond.notify()
        wait_parked(w, or_done=True)
        log.append("notifier still holds the lock")
    w.join()
    assert log == ["notifier still holds the lock", "waiter back"]


def test_condition_with_rlock_restores_nesting_after_wait() -> None:
    """An RLock held 3 levels deep is fully released during wait() and restored to 3."""
    rlock = RLock()
    cond = Condition(rlock)
    others = []

    def other() -> None:
        with cond:  # needs the RLock to be fully released by the waiter
            others.append("in")
            cond.notify()

    for _ in range(3):
        rlock.acquire()
    o = spawn(other)
    assert cond.wait(timeout=5) is True
    o.join()
    assert others == ["in"]
    rlock.release(), rlock.release()
    assert taken_by_another(rlock) is False  # still one level held
    rlock.release()
    assert taken_by_another(rlock) is True
    with pytest.raises(RuntimeError):
        rlock.release()


@pytest.mark.parametrize("lock_factory", [Lock, RLock])
def test_condition_wait_for_returns_predicate_value(lock_factory: Any) -> None:
    """wait_for waits until the predicate holds and returns its (truthy) value."""
    cond, state = Condition(lock_factory()), {"n": 0}

    def producer() -> None:
        for _ in range(3):
            with cond:
                state["n"] += 1
                cond.notify_all()

    with cond:
        p = spawn(producer)
        result = cond.wait_for(lambda: state["n"] >= 3 and state["n"] * 10, timeout=5)
    p.join()
    assert result == 30


def test_condition_wait_for_times_out_with_last_predicate_value() -> None:
    """wait_for gives up after the timeout, returning the falsy predicate value."""
    cond = Condition()
    with cond:
        t0 = time.monotonic()
        assert cond.wait_for(lambda: [], timeout=0.1) == []
        assert_waited(time.monotonic() - t0, 0.1)


@pytest.mark.parametrize("lock_factory", [Lock, RLock])
def test_condition_waiter_killed_while_reacquiring_keeps_notifier_lock(lock_factory: Any) -> None:
    """A notified waiter killed while it waits to re-take the lock neither releases the
    notifier's lock nor fails: it re-takes the lock, then dies, and its ``with`` releases."""
    lock = lock_factory()
    cond = Condition(lock)

    def waiter() -> None:
        with cond:
            cond.wait()

    w = spawn_parked(waiter)
    cond.acquire()
    cond.notify()
    wait_parked(w, or_done=True)  # now parked on the lock, which we hold
    w.kill(block=False)
    wait_parked(w, or_done=True)
    assert not w.done()  # waits for the lock before it can die
    assert not taken_by_another(lock)  # still ours
    cond.release()
    w.join()
    assert killed(w) and w.exception() is None
    assert lock.acquire(False) is True
    lock.release()


def test_condition_killed_waiters_pass_notifications_on() -> None:
    """A notification never goes to a killed waiter: neither to a parked one killed
    earlier, nor to one killed after it was notified but before it ran."""
    cond, woken = Condition(), []

    def waiter(i: int) -> None:
        with cond:
            cond.wait()
            woken.append(i)

    threads = [spawn_parked(waiter, i) for i in range(3)]
    threads[0].kill()
    with cond:
        cond.notify()  # goes to 1
        threads[1].kill(block=False)  # before it ran: the notification passes to 2
    for t in threads:
        t.join()
    assert woken == [2]


# -- Event ---------------------------------------------------------------------------------------


def test_event_set_wakes_every_waiter() -> None:
    """set() wakes all waiters (they return True); later waits return at once."""
    ev = Event()
    threads = [spawn_parked(ev.wait) for _ in range(4)]
    ev.set()
    assert [t.result() for t in threads] == [True] * 4
    assert ev.wait() is True
    ev.clear()
    w = spawn_parked(ev.wait)  # parks again after clear()
    assert not w.done()
    ev.set()
    assert w.result() is True


def test_event_set_then_clear_still_wakes_waiters_with_true() -> None:
    """As in threading, a waiter woken by set() returns True even if clear() ran first."""
    ev = Event()
    threads = [spawn_parked(ev.wait, 5) for _ in range(2)]
    ev.set()
    ev.clear()
    assert [t.result() for t in threads] == [True, True]
    assert not ev.is_set()


def test_event_waiter_killed_after_set_loses_nothing() -> None:
    """set() lets its emptied wait queue go; a woken waiter killed before it ran, and
    waiters of a later clear(), still come out right."""
    ev = Event()
    victim, survivor = spawn_parked(ev.wait), spawn_parked(ev.wait)
    ev.set()
    victim.kill()  # woken with True, killed before it ran
    assert survivor.result() is True
    with pytest.raises(RuntimeError, match="killed"):
        victim.result()
    ev.clear()
    again = spawn_parked(ev.wait, 5)
    ev.set()
    assert again.result() is True


def test_deadlock_while_reacquiring_after_condition_wait_is_raised_not_retried() -> None:
    """Main re-taking a Condition's lock that a parked thread holds forever: DeadlockError once."""
    cond = Condition(Lock())
    never = Event()

    def holder() -> None:
        with cond:
            cond.notify()
            never.wait()  # keeps the lock and never lets go

    threads = []
    with pytest.raises(greensched.DeadlockError):
        with cond:
            threads.append(spawn(holder))
            cond.wait()  # released; the holder takes the lock, notifies, then parks forever
    # The holder still waits on `never`; let it go so the test leaves nothing behind.
    never.set()
    threads[0].join()


def test_reprs_and_timeout_limits_have_the_stdlib_shape() -> None:
    """The shapes CPython's lock tests check (lock_tests.py), and the same errors."""
    lock, rlock, event = greensched.Lock(), greensched.RLock(), greensched.Event()
    assert re.fullmatch(r"<unlocked .* object (.*)?at .*>", repr(lock))
    lock.acquire()
    assert re.fullmatch(r"<locked .* object (.*)?at .*>", repr(lock))
    assert re.fullmatch(r"<unlocked .* object owner=0 count=0 at .*>", repr(rlock))
    assert re.fullmatch(r"<\w+\.Event at .*: unset>", repr(event))
    assert re.fullmatch(r"<\w+\.Semaphore at .*: value=3>", repr(greensched.Semaphore(3)))
    assert re.fullmatch(r"<\w+\.BoundedSemaphore at .*: value=3/3>", repr(greensched.BoundedSemaphore(3)))
    with pytest.raises(OverflowError):
        greensched.Lock().acquire(timeout=threading.TIMEOUT_MAX + 1)
    with pytest.raises(OverflowError):
        greensched.RLock().acquire(timeout=1e100)
    assert rlock._recursion_count() == 0
    rlock.acquire()
    rlock.acquire()
    assert rlock._recursion_count() == 2
    rlock.release()
    rlock.release()
    assert rlock._recursion_count() == 0


def test_event_isset_is_the_deprecated_alias() -> None:
    event = greensched.Event()
    with pytest.warns(DeprecationWarning, match="use is_set"):
        assert event.isSet() is False
