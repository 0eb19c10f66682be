"""Green locks, conditions, events and semaphores, shaped like `threading`'s.

Same constructors, methods, return values, timeouts and error messages as the
`threading` classes of the same name; the difference is that waiting parks the
green thread instead of blocking the OS thread. Every class is built on the one
primitive `WaitQueue`: a wait is a park at its tail, a release is a hand-off to
its head. Hand-offs make Lock, RLock and Semaphore FIFO-fair: a released lock goes
to the thread that waited longest, never to a late-comer that barges in.

Objects bind to the hub of the OS thread that first waits on them; using one from
the hub of another OS thread is an error that says so.
"""

from __future__ import annotations

import _thread
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from ._core._errors import DeadlockError
from ._core._greenthread import GreenThread
from ._core._hub import clock_now, get_hub
from ._core._waitqueue import TIMED_OUT, WaitQueue

__all__ = ["Lock", "RLock", "Condition", "Event", "Semaphore", "BoundedSemaphore"]

T = TypeVar("T")

#: RLock owner while the lock is being handed to a woken thread that has not run yet.
_HANDOFF: Any = object()


def _stdlib_message(bad_call: Callable[[], Any]) -> str:
    """The message the running Python's own lock gives for a bad call (it varies by version)."""
    try:
        bad_call()
    except ValueError as exc:
        return str(exc)
    raise AssertionError("the stdlib accepted a call it should refuse")  # pragma: no cover


_NON_BLOCKING_TIMEOUT = _stdlib_message(lambda: _thread.allocate_lock().acquire(False, 1))
_NEGATIVE_TIMEOUT = _stdlib_message(lambda: _thread.allocate_lock().acquire(True, -2))


def _lock_timeout(blocking: bool, timeout: float) -> float | None:
    """Check `threading.Lock.acquire` arguments; return the park timeout (None: forever).

    The acquires call it only for arguments other than the defaults ``(True, -1)``,
    which need no checking: a plain ``with lock:`` is the common case, and the call
    cost about 360 instructions of each (cachegrind; a spawned `threading.Thread`
    makes seven such acquires).
    """
    if not blocking:
        if timeout != -1:
            raise ValueError(_NON_BLOCKING_TIMEOUT)
        return 0.0
    if timeout == -1:
        return None
    if timeout < 0:
        raise ValueError(_NEGATIVE_TIMEOUT)
    if timeout > _thread.TIMEOUT_MAX:
        raise OverflowError("timeout value is too large")  # the stdlib's words
    return float(timeout)


def _wait_queue(reason: str, unclaimed: Callable[[Any], None] | None = None) -> WaitQueue:
    return WaitQueue(get_hub(), reason, unclaimed)


class Lock:
    """A green `threading.Lock`: not reentrant, releasable by any thread."""

    __slots__ = ("_locked", "_waiters", "__weakref__")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # As threading.Lock, which no CPython version lets you subclass (3.13 tests it).
        raise TypeError("type 'greensched.Lock' is not an acceptable base type: a Lock, like "
                        "threading.Lock, cannot be subclassed; wrap one in a class of your own")

    def __init__(self) -> None:
        self._locked = False
        self._waiters: WaitQueue | None = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock; with ``blocking`` wait up to ``timeout`` s (-1: forever)."""
        wait = None if timeout == -1 and blocking is True else _lock_timeout(blocking, timeout)
        if not self._locked:
            self._locked = True
            return True
        if wait is not None and wait <= 0:
            return False
        if self._waiters is None:
            self._waiters = _wait_queue("Lock.acquire()", self._unclaimed)
        return self._waiters.park(wait) is not TIMED_OUT  # woken means handed the lock

    def release(self) -> None:
        """Release the lock; the longest waiter, if any, gets it next."""
        if not self._locked:
            raise RuntimeError("release unlocked lock")
        if self._waiters is None or not self._waiters.wake_one():
            self._locked = False

    def _unclaimed(self, _value: Any) -> None:
        self._locked = False

    def locked(self) -> bool:
        """True while some thread holds the lock."""
        return self._locked

    def _at_fork_reinit(self) -> None:
        self._locked = False
        self._waiters = None

    __enter__ = acquire

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def __repr__(self) -> str:  # shaped like the stdlib's: <unlocked _thread.lock object at ...>
        state = "locked" if self._locked else "unlocked"
        return f"<{state} greensched.Lock object at {id(self):#x}>"


class RLock:
    """A green `threading.RLock`: the owner may acquire it again; only the owner releases."""

    __slots__ = ("_owner", "_count", "_waiters", "__weakref__")

    def __init__(self, *_ignored: Any, **_ignored_too: Any) -> None:
        # As the C `_thread.RLock` it stands in for (`threading._CRLock`) does, on every
        # version: arguments are accepted and ignored. `threading.RLock(...)` warns about
        # them on 3.13 (gh-102029) before it calls us.
        self._owner: Any = None
        self._count = 0
        self._waiters: WaitQueue | None = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock, or count one more level if the caller already owns it."""
        wait = None if timeout == -1 and blocking is True else _lock_timeout(blocking, timeout)
        me = get_hub().current
        if self._owner is me:
            self._count += 1
            return True
        if self._owner is None:
            self._owner = me
            self._count = 1
            return True
        if wait is not None and wait <= 0:
            return False
        if self._waiters is None:
            self._waiters = _wait_queue("RLock.acquire()", self._unclaimed)
        if self._waiters.park(wait) is TIMED_OUT:
            return False
        self._owner = me
        self._count = 1
        return True

    def release(self) -> None:
        """Drop one level; at zero the longest waiter gets the lock."""
        if self._owner is not get_hub().current:
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if self._count == 0:
            self._hand_on()

    def _hand_on(self) -> None:
        if self._waiters is not None and self._waiters.wake_one():
            self._owner = _HANDOFF
        else:
            self._owner = None

    def _unclaimed(self, _value: Any) -> None:
        self._owner = None
        self._count = 0

    def _is_owned(self) -> bool:
        return self._owner is get_hub().current

    def _release_save(self) -> tuple[int, Any]:
        """Release completely (for `Condition.wait`); returns what `_acquire_restore` needs."""
        if self._count == 0:
            raise RuntimeError("cannot release un-acquired lock")
        state = (self._count, self._owner)
        self._count = 0
        self._hand_on()
        return state

    def _acquire_restore(self, state: tuple[int, Any]) -> None:
        self.acquire()
        self._count, self._owner = state

    def _at_fork_reinit(self) -> None:
        self._owner = None
        self._count = 0
        self._waiters = None

    __enter__ = acquire

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def _recursion_count(self) -> int:
        """How many times the calling thread holds the lock (0 if it does not)."""
        return self._count if self._owner is get_hub().current else 0

    def __repr__(self) -> str:  # shaped like the stdlib's: <unlocked _thread.RLock object owner=0 ...>
        owner = self._owner
        ident = owner.ident if isinstance(owner, GreenThread) else 0
        state = "locked" if owner is not None else "unlocked"
        return f"<{state} greensched.RLock object owner={ident} count={self._count} at {id(self):#x}>"


class Condition:
    """A green `threading.Condition` over a green `Lock` or `RLock` (an RLock by default)."""

    def __init__(self, lock: Any | None = None) -> None:
        if lock is None:
            lock = RLock()
        self._lock = lock
        self.acquire = lock.acquire
        self.release = lock.release
        self._waiters: WaitQueue | None = None

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        self._lock.__exit__(*exc_info)

    def __repr__(self) -> str:
        return f"<greensched.Condition({self._lock!r}, {len(self._waiters or ())})>"

    def _is_owned(self) -> bool:
        is_owned = getattr(self._lock, "_is_owned", None)
        if is_owned is not None:
            return bool(is_owned())
        if self._lock.acquire(False):  # a plain Lock: owned if we cannot take it
            self._lock.release()
            return False
        return True

    def _release_save(self) -> Any:
        save = getattr(self._lock, "_release_save", None)
        if save is not None:
            return save()
        self._lock.release()
        return None

    def _acquire_restore(self, state: Any) -> None:
        restore = getattr(self._lock, "_acquire_restore", None)
        if restore is not None:
            restore(state)
        else:
            self._lock.acquire()

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, park until notified or ``timeout``, re-acquire; False on timeout."""
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        if self._waiters is None:
            self._waiters = _wait_queue("Condition.wait()")
        state = self._release_save()
        try:
            if timeout is not None and timeout <= 0:
                return False
            return self._waiters.park(timeout) is not TIMED_OUT
        finally:
            self._reacquire(state)

    def _reacquire(self, state: Any) -> None:
        """Take the lock back after a wait, even if a kill or a `Timeout` arrives meanwhile.

        The caller's ``with`` block (or ``finally: release()``) will release the lock, so
        leaving here without it would release a lock another thread holds (a plain Lock)
        or raise "cannot release un-acquired lock" (an RLock). Like the C RLock's
        ``_acquire_restore``, this is not interruptible: an exception raised while we
        wait for the lock is re-raised once we hold it again.
        """
        pending: BaseException | None = None
        while True:
            try:
                self._acquire_restore(state)
                break
            except DeadlockError:
                raise  # the lock will never come back: waiting again would only repeat this
            except BaseException as exc:  # the lock was passed on; queue for it again
                if pending is None or not isinstance(exc, Exception):
                    pending = exc  # a kill (not an Exception) outranks an earlier Timeout
        if pending is not None:
            raise pending

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        """Wait until ``predicate()`` is true or ``timeout``; returns the last predicate value."""
        endtime = None
        waittime = timeout
        result = predicate()
        while not result:
            if waittime is not None:
                if endtime is None:
                    endtime = clock_now() + waittime
                else:
                    waittime = endtime - clock_now()
                    if waittime <= 0:
                        break
            self.wait(waittime)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiting threads (they re-acquire the lock before returning)."""
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        waiters = self._waiters
        if waiters is None:
            return
        while n > 0 and waiters.wake_one():
            n -= 1

    def notify_all(self) -> None:
        """Wake every waiting thread."""
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        if self._waiters is not None:
            self._waiters.wake_all()

    notifyAll = notify_all


class Event:
    """A green `threading.Event`: a flag threads can wait to become true."""

    __slots__ = ("_flag", "_waiters", "__weakref__")

    def __init__(self) -> None:
        self._flag = False
        self._waiters: WaitQueue | None = None

    def is_set(self) -> bool:
        """True once `set` was called (and `clear` was not called since)."""
        return self._flag

    def isSet(self) -> bool:
        """Deprecated alias of `is_set`, warning as `threading.Event.isSet` does."""
        warnings.warn("isSet() is deprecated, use is_set() instead", DeprecationWarning, stacklevel=2)
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        waiters = self._waiters
        if waiters is not None:
            # Woken first: from another OS thread `wake_all` raises HubError, and the
            # event must then be as it was (flag and waiters), or they would sleep on
            # until their timeouts. The woken run only after we park, so the order
            # is not theirs to see.
            waiters.wake_all()
            # Let the emptied queue go: most events are set once (every Thread's
            # ``_started``), and a kept queue is 0.7 KiB on each, parked or not.
            # A woken thread that then cannot run passes on through the queue it holds.
            self._waiters = None
        self._flag = True

    def clear(self) -> None:
        """Reset the flag; later `wait` calls park again."""
        self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        """Park until the flag is set or ``timeout`` passes; returns the flag."""
        if self._flag:
            return True
        if timeout is not None and timeout <= 0:
            return False
        if self._waiters is None:
            self._waiters = _wait_queue("Event.wait()")
        # Woken by `set` means True even if `clear` ran before we did, as in threading.
        if self._waiters.park(timeout) is not TIMED_OUT:
            return True
        return self._flag

    def _at_fork_reinit(self) -> None:
        self._waiters = None

    def __repr__(self) -> str:
        return f"<greensched.Event at {id(self):#x}: {'set' if self._flag else 'unset'}>"


class Semaphore:
    """A green `threading.Semaphore`: a counter of available units."""

    def __init__(self, value: int = 1) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._value = value
        self._waiters: WaitQueue | None = None

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take one unit, waiting up to ``timeout`` seconds if none is free."""
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        if self._value > 0:
            self._value -= 1
            return True
        if not blocking or (timeout is not None and timeout <= 0):
            return False
        if self._waiters is None:
            self._waiters = _wait_queue(f"{type(self).__name__}.acquire()", self._unclaimed)
        return self._waiters.park(timeout) is not TIMED_OUT  # woken means handed a unit

    __enter__ = acquire

    def release(self, n: int = 1) -> None:
        """Give back ``n`` units; each goes to the longest waiter, if any."""
        if n < 1:
            raise ValueError("n must be one or more")
        for _ in range(n):
            if self._waiters is None or not self._waiters.wake_one():
                self._value += 1

    def _unclaimed(self, _value: Any) -> None:
        self._value += 1

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<greensched.{type(self).__name__} at {id(self):#x}: value={self._value}>"


class BoundedSemaphore(Semaphore):
    """A `Semaphore` that refuses to be released above its initial value."""

    def __init__(self, value: int = 1) -> None:
        super().__init__(value)
        self._initial_value = value

    def release(self, n: int = 1) -> None:
        """Give back ``n`` units; more than were taken is a `ValueError`."""
        if n < 1:
            raise ValueError("n must be one or more")
        if self._value + n > self._initial_value:
            raise ValueError("Semaphore released too many times")
        super().release(n)

    def __repr__(self) -> str:
        return (f"<greensched.{type(self).__name__} at {id(self):#x}: "
                f"value={self._value}/{self._initial_value}>")
