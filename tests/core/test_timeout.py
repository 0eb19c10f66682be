"""Timeout / TimeoutExpired: where it fires, nesting, argument checks, timer hygiene, and
no lock, unit or item lost when a Timeout hits a waiter that was just handed one."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import greensched
from greensched import (
    Condition,
    Event,
    GreenThread,
    Lock,
    Queue,
    RLock,
    Semaphore,
    SimpleQueue,
    Timeout,
    TimeoutExpired,
    spawn,
)
from greensched.testing import MockClock


def wait_parked(*threads: GreenThread, limit: float = 5.0) -> None:
    """Yield to the hub until every thread is parked (its wait has begun)."""
    deadline = time.monotonic() + limit
    while not all(t.state == "PARKED" for t in threads):
        assert time.monotonic() < deadline, f"threads never parked: {threads}"
        greensched.sleep(0)


@contextlib.contextmanager
def hub_stalled(clock: MockClock, seconds: float) -> Iterator[None]:
    """Run the body after ``seconds`` in which the hub could not run: timers that fell due
    meanwhile have not fired when the body runs; they fire right after it, before any
    thread the body woke runs.

    The time passes on the mock ``clock``; ``no_preempt`` keeps the hub from running a
    pass in the body. Then a yield (not a park, which would hand the CPU straight to
    the first thread the body woke) lets the hub fire the due timers first, as it does
    after a thread has held the CPU for longer than a slice.
    """
    with greensched.no_preempt():
        clock.jump(seconds)
        yield
    greensched.sleep(0)


def timers() -> int:
    return int(greensched.stats()["timers"])


def assert_waited(elapsed: float, timeout: float) -> None:
    assert timeout * 0.9 <= elapsed < timeout + 1.0, elapsed


# -- where it fires ----------------------------------------------------------------------------


BLOCKING = ["sleep", "Lock.acquire", "RLock.acquire", "Semaphore.acquire", "Condition.wait",
            "Event.wait", "Queue.get", "Queue.put", "Queue.join", "SimpleQueue.get",
            "GreenThread.join"]


def blocking_call(what: str, cleanups: list[Callable[[], Any]]) -> Callable[[], Any]:
    """A call that would block for a long time (cleanups undo what it needed)."""
    if what == "sleep":
        return lambda: greensched.sleep(60)
    if what == "Lock.acquire":
        lock = Lock()
        lock.acquire()
        return lock.acquire
    if what == "RLock.acquire":
        rlock = RLock()
        spawn(rlock.acquire).join()  # owned by a finished thread: never released
        return rlock.acquire
    if what == "Semaphore.acquire":
        return Semaphore(0).acquire
    if what == "Condition.wait":
        cond = Condition()

        def wait() -> None:
            with cond:
                cond.wait()
        return wait
    if what == "Event.wait":
        return Event().wait
    if what in ("Queue.get", "SimpleQueue.get"):
        return (Queue() if what == "Queue.get" else SimpleQueue()).get
    if what in ("Queue.put", "Queue.join"):
        q = Queue(1)
        q.put(1)
        return (lambda: q.put(2)) if what == "Queue.put" else q.join
    ev = Event()
    thread = spawn(ev.wait)
    cleanups.append(lambda: (ev.set(), thread.join()))
    return thread.join


@pytest.mark.parametrize("what", BLOCKING)
def test_timeout_fires_in_a_blocking_call(what: str, autojump: MockClock) -> None:
    """The Timeout interrupts the wait after its seconds (on the mock clock: exactly);
    the exception is a TimeoutError carrying the Timeout that fired, marked expired."""
    cleanups: list[Callable[[], Any]] = []
    call = blocking_call(what, cleanups)
    start = timers()
    t = Timeout(0.1)
    t0 = autojump.now()
    try:
        with pytest.raises(TimeoutExpired) as info:
            with t:
                call()
    finally:
        for cleanup in cleanups:
            cleanup()
    assert autojump.now() - t0 == pytest.approx(0.1)
    assert isinstance(info.value, TimeoutError)
    assert info.value.timeout is t and t.expired
    assert "0.1" in str(info.value)
    assert timers() == start


def test_timeout_zero_fires_at_the_first_park(autojump: MockClock) -> None:
    """Timeout(0) lets non-parking code run and fires as soon as the block parks."""
    with pytest.raises(TimeoutExpired):
        with Timeout(0) as t:
            total = sum(range(1000))
            greensched.sleep(5)
    assert total == 499500 and t.expired


def test_timeout_caught_inside_the_block_lets_it_continue(autojump: MockClock) -> None:
    """Catching TimeoutExpired inside the block is allowed; the block then ends normally."""
    start = timers()
    with Timeout(0.05) as t:
        try:
            Event().wait()
        except TimeoutExpired as exc:
            assert exc.timeout is t
        after = "continued"
    assert after == "continued" and t.expired and timers() == start


def test_timeout_in_condition_wait_raises_only_with_the_lock_held_again(autojump: MockClock) -> None:
    """A Timeout that fires in Condition.wait() is raised once the waiter has re-taken
    the lock (as threading does), so its ``with`` block releases a lock it holds."""
    lock = Lock()
    cond = Condition(lock)
    fired = []

    def waiter() -> None:
        try:
            with Timeout(0.05) as t:
                with cond:
                    cond.wait()
        except TimeoutExpired as exc:
            fired.append(exc.timeout is t)

    w = spawn(waiter)
    wait_parked(w)
    with cond:
        greensched.sleep(0.15)  # the waiter's Timeout (0.05 s) falls due meanwhile
        assert not w.done() and fired == []  # it waits for the lock we hold
    w.join()
    assert fired == [True] and not lock.locked()


def test_timeout_only_affects_its_own_thread(autojump: MockClock) -> None:
    """A Timeout in one green thread does not disturb another thread's wait."""
    ev = Event()

    def limited() -> bool:
        try:
            with Timeout(0.05):
                ev.wait()
        except TimeoutExpired:
            return True
        return False

    other = spawn(lambda: ev.wait(5))
    assert spawn(limited).result() is True
    assert not other.done()
    ev.set()
    assert other.result() is True


@pytest.mark.parametrize("rival", [False, True], ids=["alone", "with-rival"])
def test_timeout_interrupts_a_cpu_bound_loop(rival: bool) -> None:
    """A spinning thread, alone or competing with another, is preempted once the time is
    up and the Timeout is raised where it was preempted."""
    if not greensched.get_preemption()[0]:
        pytest.skip("preemption is off")
    stop = Event()
    other = spawn(lambda: [None for _ in iter(stop.is_set, True)]) if rival else None
    t0 = time.monotonic()
    spins = 0
    try:
        with pytest.raises(TimeoutExpired):
            with Timeout(0.1):
                while True:
                    spins += 1
    finally:
        stop.set()
        if other is not None:
            other.join()
    assert spins > 0
    assert_waited(time.monotonic() - t0, 0.1)


# -- not firing ------------------------------------------------------------------------------


def test_timeout_that_does_not_fire_leaves_no_timer(autojump: MockClock) -> None:
    """A block that ends in time: nothing raised, not expired, the timer is gone."""
    start = timers()
    with Timeout(5) as t:
        assert timers() == start + 1
        greensched.sleep(0.01)
    assert not t.expired and timers() == start
    greensched.sleep(0.05)  # nothing fires later either
    assert not t.expired


def test_timeout_block_raising_another_exception_cancels_the_timer() -> None:
    """Another exception leaves the block unchanged, and the timer is cancelled."""
    start = timers()
    with pytest.raises(KeyError):
        with Timeout(5):
            raise KeyError("mine")
    assert timers() == start


def test_timeout_of_a_killed_thread_leaves_no_timer() -> None:
    """Killing a thread inside a Timeout block cancels that Timeout's timer."""

    def worker() -> None:
        with Timeout(5):
            Event().wait()

    start = timers()
    k = spawn(worker)
    wait_parked(k)
    assert timers() == start + 1
    k.kill()
    assert k.done() and timers() == start


@pytest.mark.parametrize("what", ["Lock.acquire", "Semaphore.acquire", "Queue.get", "Event.wait"])
def test_successful_timed_waits_leave_no_timer(what: str) -> None:
    """A wait with a timeout that is satisfied before the timeout cancels its timer."""
    lock, sem, q, ev = Lock(), Semaphore(0), Queue(), Event()
    lock.acquire()
    give = {"Lock.acquire": lock.release, "Semaphore.acquire": sem.release,
            "Queue.get": lambda: q.put(1), "Event.wait": ev.set}[what]
    take = {"Lock.acquire": lambda: lock.acquire(timeout=5),
            "Semaphore.acquire": lambda: sem.acquire(timeout=5),
            "Queue.get": lambda: q.get(timeout=5) == 1, "Event.wait": lambda: ev.wait(5)}[what]
    start = timers()
    w = spawn(take)
    wait_parked(w)
    assert timers() == start + 1
    give()
    assert w.result() is True
    assert timers() == start


def test_timeout_none_never_fires_and_schedules_nothing(autojump: MockClock) -> None:
    """Timeout(None) is a no-op limit: no timer, never expires."""
    start = timers()
    with Timeout(None) as t:
        assert timers() == start
        greensched.sleep(0.05)
    assert t.seconds is None and not t.expired


# -- nesting ---------------------------------------------------------------------------------------


def test_nested_inner_shorter_raises_the_inner_timeout(autojump: MockClock) -> None:
    """The inner, shorter Timeout fires; the outer one is untouched and keeps running."""
    start = timers()
    with Timeout(5) as outer:
        with pytest.raises(TimeoutExpired) as info:
            with Timeout(0.05) as inner:
                greensched.sleep(5)
        assert info.value.timeout is inner
        assert timers() == start + 1  # only the outer one is left
    assert inner.expired and not outer.expired
    assert timers() == start


def test_nested_outer_shorter_passes_through_the_inner_block(autojump: MockClock) -> None:
    """The outer, shorter Timeout's exception leaves the inner block untouched."""
    start = timers()
    inner_exited = []
    with pytest.raises(TimeoutExpired) as info:
        with Timeout(0.05) as outer:
            try:
                with Timeout(5) as inner:
                    greensched.sleep(5)
            finally:
                inner_exited.append(True)
    assert info.value.timeout is outer
    assert outer.expired and not inner.expired and inner_exited == [True]
    assert timers() == start


# -- argument checks -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (-0.001, ValueError),
                                      (math.nan, ValueError), ("x", TypeError),
                                      (object(), TypeError), ([1], TypeError)])
def test_bad_seconds_are_rejected(bad: Any, exc: type[Exception]) -> None:
    """Negative/NaN seconds are a ValueError, a non-number a TypeError."""
    with pytest.raises(exc, match="Timeout seconds"):
        Timeout(bad)


@pytest.mark.parametrize("good, seconds", [(0, 0.0), (2, 2.0), (0.25, 0.25), (None, None)])
def test_good_seconds_are_accepted(good: Any, seconds: Any) -> None:
    """Zero, ints, floats and None are fine; seconds is stored as a float (or None)."""
    t = Timeout(good)
    assert t.seconds == seconds and not t.expired


def test_a_timeout_cannot_be_entered_while_active() -> None:
    """Entering the same Timeout twice (nested) is a clear RuntimeError."""
    t = Timeout(5)
    with t:
        with pytest.raises(RuntimeError, match="entered twice"):
            t.__enter__()
    assert not t.expired


# -- many waits timing out at once (regression: WaitQueue._forget once over-counted stale entries)


@pytest.mark.parametrize("n_timed_out", [40, 100])
def test_condition_repr_counts_waiters_after_mass_timeout(n_timed_out: int, mock_clock: MockClock) -> None:
    """After many waiters time out together, the waiter count (shown in repr) stays right."""
    cond = Condition(Lock())

    def waiter(timeout: Any) -> None:
        with cond:
            cond.wait(timeout)

    timed = [spawn(waiter, 0.05) for _ in range(n_timed_out)]
    live = [spawn(waiter, None) for _ in range(2)]
    wait_parked(*timed, *live)
    with hub_stalled(mock_clock, 0.15):
        pass  # every 0.05 s wait falls due in the same hub pass
    for t in timed:
        t.join()
    try:
        assert repr(cond).endswith(", 2)>"), repr(cond)
    finally:
        with cond:
            cond.notify_all()
        for t in live:
            t.join()


# -- nothing lost when a Timeout hits a waiter that was just handed something ---------------------


@pytest.mark.parametrize("kind", ["Lock", "RLock", "Semaphore", "Queue", "SimpleQueue"])
def test_value_handed_to_a_waiter_whose_timeout_fires_first_is_not_lost(
        kind: str, mock_clock: MockClock) -> None:
    """The waiter was handed the lock/unit/item, but its overdue Timeout fires before it
    runs: it raises TimeoutExpired and what it was handed stays available."""
    lock, rlock, sem, q, sq = Lock(), RLock(), Semaphore(0), Queue(), SimpleQueue()
    lock.acquire()
    rlock.acquire()
    take, give, available = {
        "Lock": (lock.acquire, lock.release, lambda: lock.acquire(False)),
        "RLock": (rlock.acquire, rlock.release, lambda: spawn(rlock.acquire, False).result()),
        "Semaphore": (sem.acquire, sem.release, lambda: sem.acquire(False)),
        "Queue": (q.get, lambda: q.put("x"), lambda: q.get_nowait() == "x"),
        "SimpleQueue": (sq.get, lambda: sq.put("x"), lambda: sq.get_nowait() == "x"),
    }[kind]
    outcome = []

    def waiter() -> None:
        try:
            with Timeout(0.05) as t:
                take()
                outcome.append("took it")
        except TimeoutExpired as exc:
            outcome.append(exc.timeout is t and t.expired)

    w = spawn(waiter)
    wait_parked(w)
    with hub_stalled(mock_clock, 0.15):
        give()  # hands it to the waiter, whose Timeout is already overdue
    w.join()
    assert outcome == [True]
    assert available() is True


def test_kill_is_not_lost_when_a_timeout_fires_before_the_thread_runs(mock_clock: MockClock) -> None:
    """A thread killed while parked must die even if its Timeout falls due in the same pass
    (regression: Hub.throw once let the Timeout replace the pending kill)."""
    lock = Lock()
    lock.acquire()
    attempts = []

    def worker() -> None:
        for _ in range(3):
            try:
                with Timeout(0.05):
                    attempts.append(1)
                    lock.acquire()
            except TimeoutExpired:
                pass  # retry

    w = spawn(worker)
    wait_parked(w)
    with hub_stalled(mock_clock, 0.15):
        w.kill(block=False)  # GreenThreadExit pending; the worker's Timeout is overdue
    w.join()
    lock.release()
    assert attempts == [1]
