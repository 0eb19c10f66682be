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
"""

from __future__ import annotations

import heapq
from typing import Any, Callable, Optional

__all__ = ["TimerHeap", "TimerHandle"]

#: An entry: [deadline, seq, callback or None when cancelled, arg].
TimerHandle = list


class TimerHeap:
    """Timers ordered by deadline; O(log n) schedule, O(1) cancel."""

    __slots__ = ("_heap", "_seq", "_cancelled")

    def __init__(self) -> None:
        self._heap: list[TimerHandle] = []
        self._seq = 0
        self._cancelled = 0

    def __len__(self) -> int:
        """Number of live (not cancelled) timers."""
        return len(self._heap) - self._cancelled

    def schedule(self, deadline: float, callback: Callable[[Any], None], arg: Any = None) -> TimerHandle:
        """Call ``callback(arg)`` once ``deadline`` has passed; returns a handle for `cancel`."""
        self._seq += 1
        entry = [deadline, self._seq, callback, arg]
        heapq.heappush(self._heap, entry)
        return entry

    def cancel(self, entry: TimerHandle) -> None:
        """Forget a timer; cancelling twice, or after it fired, does nothing."""
        if entry[2] is None:
            return
        entry[2] = None
        entry[3] = None
        self._cancelled += 1
        heap = self._heap
        if self._cancelled > 64 and self._cancelled * 2 > len(heap):
            heap[:] = [e for e in heap if e[2] is not None]
            heapq.heapify(heap)
            self._cancelled = 0

    def next_deadline(self) -> Optional[float]:
        """The earliest live deadline, or None when no timer is pending."""
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
            self._cancelled -= 1
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[tuple[Callable[[Any], None], Any]]:
        """Remove the live entries whose deadline is <= ``now``; return their calls in order.

        The caller runs ``callback(arg)`` for each. Entries are marked fired, so a
        later `cancel` of their handles is a no-op.
        """
        heap = self._heap
        due: list[tuple[Callable[[Any], None], Any]] = []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            callback = entry[2]
            if callback is None:
                self._cancelled -= 1
                continue
            due.append((callback, entry[3]))
            entry[2] = entry[3] = None  # fired: cancel() must not count it again
        return due
