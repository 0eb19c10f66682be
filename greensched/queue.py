"""Green queues, shaped like the stdlib `queue` module's.

`Queue`, `LifoQueue`, `PriorityQueue` and `SimpleQueue` keep the stdlib's
constructors, methods, ``block``/``timeout`` semantics, ``task_done``/``join``, and
raise the stdlib's own `queue.Full` and `queue.Empty`, so ``except queue.Empty``
works with either. Subclasses may override ``_init``, ``_qsize``, ``_put`` and
``_get`` exactly as with the stdlib classes.

Two wait queues do the waiting, with hand-offs that keep them FIFO-fair and lose
nothing:

* a ``get`` that finds the queue empty parks; the next ``put`` hands its item
  straight to the longest-waiting getter (the item never touches the buffer);
* a ``put`` that finds the queue full parks; the next ``get`` that frees a slot
  reserves it for the longest-waiting putter, so a late-comer cannot take it.
"""

from __future__ import annotations

import heapq
import types
from collections import deque
from queue import Empty, Full
from typing import Any

from ._core._hub import get_hub
from ._core._waitqueue import TIMED_OUT, WaitQueue

__all__ = ["Queue", "LifoQueue", "PriorityQueue", "SimpleQueue", "Empty", "Full"]


def _check_timeout(block: bool, timeout: float | None) -> float | None:
    """The stdlib's rule: a negative timeout is an error when blocking."""
    if block and timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return timeout


def _wait_for_item(getters: WaitQueue, block: bool, timeout: float | None) -> Any:
    """Park an empty queue's getter until a put hands it an item; `Empty` if none comes."""
    if not block or (timeout is not None and timeout <= 0):
        raise Empty
    item = getters.park(timeout)
    if item is TIMED_OUT:
        raise Empty
    return item


class Queue:
    """A green FIFO `queue.Queue`; ``maxsize <= 0`` means unbounded."""

    # As the stdlib's: ``queue.Queue[int]`` in annotations and ``class Jobs(Queue[T])``
    # (psycopg's pool subclasses it so) work after patch_all() replaced the class.
    __class_getitem__: Any = classmethod(types.GenericAlias)

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self._init(maxsize)
        self.unfinished_tasks = 0
        self._reserved = 0  # free slots promised to woken putters
        hub = get_hub()
        self._getters = WaitQueue(hub, f"{type(self).__name__}.get()", self._getter_dropped)
        self._putters = WaitQueue(hub, f"{type(self).__name__}.put()", self._putter_dropped)
        self._all_done = WaitQueue(hub, f"{type(self).__name__}.join()")

    # -- the storage hooks, as in the stdlib --------------------------------------------

    def _init(self, maxsize: int) -> None:
        self.queue: Any = deque()

    def _qsize(self) -> int:
        return len(self.queue)

    def _put(self, item: Any) -> None:
        self.queue.append(item)

    def _get(self) -> Any:
        return self.queue.popleft()

    def _put_back(self, item: Any) -> None:
        """Return an item a getter was handed but could not take (it was killed)."""
        if type(self)._put is Queue._put:
            self.queue.appendleft(item)
        else:
            self._put(item)

    # -- the public API ---------------------------------------------------------------------

    def qsize(self) -> int:
        """Approximate size of the queue (exact here: there is one OS thread)."""
        return self._qsize()

    def empty(self) -> bool:
        """True if the queue holds no item."""
        return not self._qsize()

    def full(self) -> bool:
        """True if ``maxsize`` items are queued (never for an unbounded queue)."""
        return 0 < self.maxsize <= self._qsize() + self._reserved

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put ``item``; if the queue is full, wait up to ``timeout`` s, then raise `Full`."""
        _check_timeout(block, timeout)
        if self.maxsize > 0 and self._qsize() + self._reserved >= self.maxsize:
            if not block or (timeout is not None and timeout <= 0):
                raise Full
            if self._putters.park(timeout) is TIMED_OUT:
                raise Full
            self._reserved -= 1  # the getter that woke us kept this slot for us
        # Every wake-up here comes before the queue's own state changes: from another
        # OS thread `wake_one` raises HubError, and the queue must be as it was.
        handed = self._getters.wake_one(item)
        self.unfinished_tasks += 1
        if not handed:
            self._put(item)
        elif self.maxsize > 0 and self._qsize() + self._reserved < self.maxsize:
            # The item went straight to a getter, so the slot this put used (perhaps one a
            # get reserved for us) is free again: a parked putter must not be left waiting.
            if self._putters.wake_one():
                self._reserved += 1

    def put_nowait(self, item: Any) -> None:
        """`put` without waiting: raises `Full` at once."""
        self.put(item, block=False)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return an item; if empty, wait up to ``timeout`` s, then raise `Empty`."""
        _check_timeout(block, timeout)
        if self._qsize():
            if self.maxsize > 0 and self._putters.wake_one():  # first: see `put`
                self._reserved += 1  # the slot _get frees is the woken putter's
            return self._get()
        return _wait_for_item(self._getters, block, timeout)

    def get_nowait(self) -> Any:
        """`get` without waiting: raises `Empty` at once."""
        return self.get(block=False)

    def task_done(self) -> None:
        """Mark one item fetched earlier as processed, for `join`."""
        if self.unfinished_tasks <= 0:
            raise ValueError("task_done() called too many times")
        if self.unfinished_tasks == 1:
            self._all_done.wake_all()  # first: see `put`
        self.unfinished_tasks -= 1

    def join(self) -> None:
        """Park until every item put has been marked done with `task_done`."""
        while self.unfinished_tasks:
            self._all_done.park()

    # -- hand-offs that no thread could accept ---------------------------------------------

    def _getter_dropped(self, item: Any) -> None:
        self._put_back(item)

    def _putter_dropped(self, _value: Any) -> None:
        self._reserved -= 1


class _ListQueue(Queue):
    """Storage in a plain list, for the two orders that are not FIFO."""

    def _init(self, maxsize: int) -> None:
        self.queue = []

    def _qsize(self) -> int:
        return len(self.queue)


class LifoQueue(_ListQueue):
    """A green `queue.LifoQueue`: the most recently put item comes out first."""

    def _put(self, item: Any) -> None:
        self.queue.append(item)

    def _get(self) -> Any:
        return self.queue.pop()


class PriorityQueue(_ListQueue):
    """A green `queue.PriorityQueue`: the lowest item comes out first."""

    def _put(self, item: Any) -> None:
        heapq.heappush(self.queue, item)

    def _get(self) -> Any:
        return heapq.heappop(self.queue)


class SimpleQueue:
    """A green `queue.SimpleQueue`: unbounded FIFO without task tracking."""

    __class_getitem__: Any = classmethod(types.GenericAlias)  # as the stdlib's (see Queue)

    def __init__(self) -> None:
        self._queue: deque[Any] = deque()
        self._getters = WaitQueue(get_hub(), "SimpleQueue.get()", self._queue.appendleft)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put ``item``; never blocks (the arguments exist for compatibility)."""
        if not self._getters.wake_one(item):
            self._queue.append(item)

    def put_nowait(self, item: Any) -> None:
        """Same as `put`."""
        self.put(item)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return an item; if empty, wait up to ``timeout`` s, then raise `Empty`."""
        _check_timeout(block, timeout)
        if self._queue:
            return self._queue.popleft()
        return _wait_for_item(self._getters, block, timeout)

    def get_nowait(self) -> Any:
        """`get` without waiting: raises `Empty` at once."""
        return self.get(False)

    def empty(self) -> bool:
        """True if the queue holds no item."""
        return not self._queue

    def qsize(self) -> int:
        """Number of queued items."""
        return len(self._queue)
