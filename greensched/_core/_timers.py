"""A deadline heap with lazy cancellation: pure data, no clocks, no threads.

The hub keeps one of these. Entries are ``[deadline, seq, callback, arg]`` lists;
``seq`` breaks ties so equal deadlines fire in the order they were scheduled (FIFO)
and so the heap never compares callbacks.

Why lazy cancellation: cancelling is the common case (most timeouts never fire,
every ``Lock.acquire(timeout=...)`` that succeeds cancels one), and removing from
the middle of a heap is O(n). A cancelled entry has its callback set to ``None``
and stays in the heap until it reaches the top, where it is dropped. When more than
half of the heap is dead weight it is rebuilt, so memory stays bounded by twice the
live timers.

Read from a signal handler
--------------------------
The preemption handler (``_preempt``) asks "how many timers are live?" and "is one
due?" at any bytecode of any thread, including the middle of `cancel` rebuilding the
heap. So the two reads it uses, `__len__` and `peek_deadline`, change nothing and
are right (or a harmless hint) in every intermediate state:

* the live count is one integer (`_live`), written by one store per change, never
  derived from two fields that a rebuild updates one after the other (the old
  ``len(heap) - cancelled`` went negative between them: ``ValueError: __len__()
  should return >= 0`` out of the hub loop);
* a rebuild builds and heapifies a new list, then installs it with one store, so a
  reader sees either the old heap or the new one, each a valid heap;
* `peek_deadline` only looks at the top. The top of a valid heap is a lower bound
  of every live deadline; if it is a cancelled entry the answer is early, which at
  worst asks for one switch too soon; the hub drops such entries on its next pass.

`next_deadline` and `pop_due` drop cancelled entries: only the hub and thread code
call them, never a signal handler.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, TypeAlias

__all__ = ["TimerHeap", "TimerHandle"]

#: An entry: [deadline, seq, callback or None when cancelled, arg].
TimerHandle: TypeAlias = list[Any]

#: A rebuild happens once the dead entries outnumber the live ones by more than this.
_REBUILD_SLACK = 64


class TimerHeap:
    """Timers ordered by deadline; O(log n) schedule, O(1) cancel."""

    __slots__ = ("_heap", "_seq", "_live")

    def __init__(self) -> None:
        self._heap: list[TimerHandle] = []
        self._seq = 0
        self._live = 0  # entries scheduled and neither cancelled nor fired

    def __len__(self) -> int:
        """Number of live (not cancelled) timers. Safe to call from a signal handler."""
        return self._live

    def has_entries(self) -> bool:
        """Anything in the heap, live or cancelled (the hub then runs `pop_due`)."""
        return bool(self._heap)

    def schedule(self, deadline: float, callback: Callable[[Any], None], arg: Any = None) -> TimerHandle:
        """Call ``callback(arg)`` once ``deadline`` has passed; returns a handle for `cancel`."""
        self._seq += 1
        entry = [deadline, self._seq, callback, arg]
        heapq.heappush(self._heap, entry)
        self._live += 1
        return entry

    def cancel(self, entry: TimerHandle) -> None:
        """Forget a timer; cancelling twice, or after it fired, does nothing."""
        if entry[2] is None:
            return
        entry[2] = None
        entry[3] = None
        self._live -= 1
        if len(self._heap) > 2 * self._live + _REBUILD_SLACK:
            # Built aside and installed with one store: a signal handler reading the
            # heap meanwhile sees the old one or the new one, never a half-made one.
            live = [e for e in self._heap if e[2] is not None]
            heapq.heapify(live)
            self._heap = live

    def peek_deadline(self) -> float | None:
        """A lower bound of the earliest live deadline (None: no entry). Changes nothing.

        The one deadline read a signal handler may make (see the module docstring):
        the top entry's deadline, even if that entry was cancelled.
        """
        heap = self._heap
        try:
            return heap[0][0] if heap else None
        except IndexError:  # emptied between the two reads (by a hub-side pop)
            return None

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or None when no timer is pending. Not for signal handlers."""
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[tuple[Callable[[Any], None], Any]]:
        """Remove the entries whose deadline is <= ``now``; return the live ones' calls in order.

        The caller runs ``callback(arg)`` for each. Entries are marked fired, so a
        later `cancel` of their handles is a no-op. Not for signal handlers.
        """
        heap = self._heap
        due: list[tuple[Callable[[Any], None], Any]] = []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            callback = entry[2]
            if callback is None:
                continue  # cancelled
            due.append((callback, entry[3]))
            entry[2] = entry[3] = None  # fired: cancel() must not count it again
            self._live -= 1
        return due

    def live_entries(self) -> int:
        """Count the live entries one by one (for tests: must equal ``len(self)``)."""
        return sum(1 for e in self._heap if e[2] is not None)
