"""WaitQueue: a FIFO of parked green threads. Every synchronisation primitive is built on it.

The whole protocol is three calls:

* ``park(timeout)`` — the current thread waits at the tail until some other thread
  calls ``wake_one``/``wake_all``; it returns the value the waker handed over, or
  `TIMED_OUT` when ``timeout`` ran out first. Exceptions thrown into the parked
  thread (``kill()``, a `Timeout`) propagate out of ``park``.
* ``wake_one(value)`` — hand ``value`` to the longest-waiting thread and make it
  ready; returns False when nobody is waiting (so the caller keeps the value).
* ``wake_all(value)`` — the same for every waiter.

A thread that leaves ``park`` by timeout or exception leaves a stale entry behind;
stale entries are skipped when popped, and compacted away once they outnumber the
live ones, so a queue whose waiters keep timing out does not grow without bound.

A wake-up is a hand-off: once ``wake_one`` returned True the value belongs to the
woken thread, even if it has not run yet. Primitives rely on this to hand a lock,
a semaphore unit or a queue item straight to the next waiter, which keeps them
FIFO-fair and means no wake-up is ever lost. One race needs care: a thread that was
handed a value and then, before it ran, was killed or timed out by a `Timeout`
cannot use the value. ``park`` then passes it on to the next waiter, or, when there
is none, gives it to the queue's ``unclaimed`` callback (a lock marks itself free, a
semaphore counts the unit back, a queue puts the item back at the front).
"""

from __future__ import annotations

import _thread
from collections import deque
from collections.abc import Callable
from typing import Any

from ._errors import HubError
from ._parking import TIMED_OUT, Parker

__all__ = ["WaitQueue", "TIMED_OUT"]

# The OS-level original, captured before `patch_all()` can touch `_thread`.
_os_thread_ident = _thread.get_ident

# An entry is [park token, state]; the state says who still counts it.
_WAITING = "waiting"  # queued, its thread parked (or woken but not yet running)
_STALE = "stale"  # queued, but its thread left by timeout or exception
_POPPED = "popped"  # taken off the queue by wake_one


class WaitQueue:
    """FIFO of [park token, state] entries (`_parking`); see the module docstring."""

    __slots__ = ("_entries", "_stale", "_hub", "_reason", "_unclaimed")

    def __init__(
        self, hub: Parker, reason: str, unclaimed: Callable[[Any], None] | None = None
    ) -> None:
        self._entries: deque[list[Any]] = deque()
        self._stale = 0
        self._hub = hub
        #: What a thread parked here waits on, for deadlock reports and stack dumps.
        self._reason = reason
        #: Takes back a handed-over value that no thread could accept (see above).
        self._unclaimed = unclaimed

    def __len__(self) -> int:
        """Number of threads waiting (an upper bound while stale entries linger)."""
        return len(self._entries) - self._stale

    def __bool__(self) -> bool:
        return len(self._entries) > self._stale

    def park(self, timeout: float | None = None) -> Any:
        """Wait at the tail of the queue; see the module docstring."""
        hub = self._hub
        token = hub.prepare_park()
        entry = [token, _WAITING]
        self._entries.append(entry)
        try:
            value = hub.park(token, self._reason, timeout)
        except BaseException:
            handed = hub.take_dropped_value(token)
            if handed is TIMED_OUT:
                self._forget(entry)
            elif not self.wake_one(handed) and self._unclaimed is not None:
                self._unclaimed(handed)
            raise
        if value is TIMED_OUT:
            self._forget(entry)
        return value

    def _forget(self, entry: list[Any]) -> None:
        """Our thread left without being woken: its entry, if still queued, is stale."""
        if entry[1] is not _WAITING:
            return  # already popped by wake_one, which found the thread gone
        entry[1] = _STALE
        self._stale += 1
        entries = self._entries
        if self._stale > 32 and self._stale * 2 > len(entries):
            self._entries = deque(e for e in entries if e[1] is _WAITING)
            self._stale = 0

    def wake_one(self, value: Any = True) -> bool:
        """Hand ``value`` to the first waiter; False when there is none.

        Only the OS thread of the waiters' hub may wake them: a hub is not
        thread-safe, so a wake from elsewhere raises `HubError` and changes nothing.
        """
        entries = self._entries
        if entries and _os_thread_ident() != self._hub.os_thread_id:
            raise HubError(
                f"green threads waiting in {self._reason} were woken (a release, set, put or "
                f"notify) from an OS thread other than their own; a green primitive belongs "
                f"to one OS thread's hub. Hand the work to that OS thread with its hub's "
                f"call_soon_threadsafe(), or share a real threading primitive between OS "
                f"threads (e.g. greensched.original('threading', 'Lock'))"
            )
        unpark = self._hub.unpark
        while entries:
            entry = entries.popleft()
            if entry[1] is _STALE:
                self._stale -= 1
                continue
            entry[1] = _POPPED
            if unpark(entry[0], value):
                return True
            # The thread already left (timed out or killed) and has not run yet to
            # mark its entry stale; _POPPED tells its _forget that it is gone.
        return False

    def wake_all(self, value: Any = True) -> int:
        """Hand ``value`` to every waiter; returns how many were woken."""
        n = 0
        while self.wake_one(value):
            n += 1
        return n
