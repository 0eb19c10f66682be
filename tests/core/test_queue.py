"""Queue, LifoQueue, PriorityQueue, SimpleQueue: stdlib parity, parking, FIFO hand-offs,
timeouts, task tracking, and no item or slot lost when a waiter is killed."""

from __future__ import annotations

import queue as stdlib_queue
import time
from collections.abc import Callable
from typing import Any

import pytest

import greensched
from greensched import (
    Empty,
    Full,
    GreenThread,
    LifoQueue,
    PriorityQueue,
    Queue,
    SimpleQueue,
    spawn,
)

QUEUES = [Queue, LifoQueue, PriorityQueue, SimpleQueue]
BOUNDED = [Queue, LifoQueue, PriorityQueue]


def wait_parked(*threads: GreenThread, limit: float = 5.0) -> None:
    """Yield to the hub until every thread is parked (its wait has begun)."""
    deadline = time.monotonic() + limit
    while not all(t.state == "PARKED" for t in threads):
        assert time.monotonic() < deadline, f"threads never parked: {threads}"
        greensched.sleep(0)


def spawn_parked(fn: Callable[..., Any], *args: Any) -> GreenThread:
    """Spawn ``fn(*args)`` and return once it is parked: fixes the waiters' arrival order."""
    thread = spawn(fn, *args)
    wait_parked(thread)
    return thread


def assert_waited(elapsed: float, timeout: float) -> None:
    assert timeout * 0.9 <= elapsed < timeout + 1.0, elapsed


def make(cls: Any, maxsize: int = 0) -> Any:
    return cls() if cls is SimpleQueue else cls(maxsize)


# -- same answers as the stdlib for everything that does not wait ----------------------------------


def _calls(q: Any) -> list[Any]:
    out = [q.empty(), q.full(), q.qsize(), q.put(3), q.put_nowait(1), q.full(), q.qsize()]
    out += [q.get(), q.empty(), q.put(2, True, 0), q.get_nowait(), q.get(False), q.empty()]
    return out + [q.task_done() for _ in range(3)] + [q.unfinished_tasks, q.join()]


def _fill(q: Any) -> list[Any]:
    for i in range(100):
        q.put_nowait(i)
    return [q.full(), q.qsize(), q.get(), q.get(timeout=0)]


#: name -> (maxsize, call on a fresh queue); none of them waits.
CASES: dict[str, tuple[int, Callable[[Any], Any]]] = {
    "a sequence of calls": (2, _calls),
    "maxsize 0 is unbounded": (0, _fill),
    "maxsize -3 is unbounded": (-3, _fill),
    "get(timeout=-1)": (0, lambda q: q.get(timeout=-1)),
    "get(False, -1) on empty": (0, lambda q: q.get(False, -1)),
    "get_nowait() on empty": (0, lambda q: q.get_nowait()),
    "get(timeout=0) on empty": (0, lambda q: q.get(timeout=0)),
    "put(timeout=-1) on full": (1, lambda q: (q.put(1), q.put(2, timeout=-1))),
    "put(False, -1) on full": (1, lambda q: (q.put(1), q.put(2, False, -1))),
    "put_nowait() on full": (1, lambda q: (q.put(1), q.put_nowait(2))),
    "put(timeout=0) on full": (1, lambda q: (q.put(1), q.put(2, timeout=0))),
    "task_done() too often": (0, lambda q: (q.put(1), q.task_done(), q.task_done())),
}


def _simple_calls(q: Any) -> list[Any]:
    out = [q.empty(), q.qsize(), q.put(1), q.put(2, False), q.put(3, True, -1), q.put_nowait(4)]
    return out + [q.qsize(), q.get(), q.get(False), q.get(True, 0), q.get_nowait(), q.empty()]


SIMPLE_CASES: dict[str, Callable[[Any], Any]] = {
    "a sequence of calls": _simple_calls,
    "get(timeout=-1)": lambda q: q.get(timeout=-1),
    "get(False, -1) on empty": lambda q: q.get(False, -1),
    "get_nowait() on empty": lambda q: q.get_nowait(),
    "get(timeout=0) on empty": lambda q: q.get(timeout=0),
}


def outcome(fn: Callable[[], Any]) -> tuple[Any, Any]:
    try:
        return ("returned", fn())
    except Exception as exc:
        return (type(exc), str(exc))


@pytest.mark.parametrize("name", ["Queue", "LifoQueue", "PriorityQueue"])
@pytest.mark.parametrize("case", list(CASES))
def test_non_waiting_behaviour_matches_stdlib(name: str, case: str) -> None:
    """Return values, exception classes (the stdlib's own Empty/Full) and messages match."""
    maxsize, call = CASES[case]
    ours = outcome(lambda: call(getattr(greensched, name)(maxsize)))
    assert ours == outcome(lambda: call(getattr(stdlib_queue, name)(maxsize)))


@pytest.mark.parametrize("case", list(SIMPLE_CASES))
def test_simple_queue_non_waiting_behaviour_matches_stdlib(case: str) -> None:
    """The same for SimpleQueue (whose put never blocks, whatever its arguments)."""
    call = SIMPLE_CASES[case]
    assert outcome(lambda: call(SimpleQueue())) == outcome(lambda: call(stdlib_queue.SimpleQueue()))


def test_empty_and_full_are_the_stdlib_classes() -> None:
    """``except queue.Empty`` catches ours: they are the very same classes."""
    assert Empty is stdlib_queue.Empty and Full is stdlib_queue.Full


@pytest.mark.parametrize("cls, expected", [(Queue, [5, 1, 4, 2, 3]), (LifoQueue, [3, 2, 4, 1, 5]),
                                           (PriorityQueue, [1, 2, 3, 4, 5])])
def test_retrieval_order(cls: Any, expected: list[int]) -> None:
    """FIFO, LIFO and lowest-first order, as in the stdlib."""
    q = cls()
    for item in [5, 1, 4, 2, 3]:
        q.put(item)
    assert [q.get() for _ in range(5)] == expected


def test_priority_queue_orders_tuples_and_keeps_equal_keys_apart() -> None:
    """(priority, data) tuples come out by priority, then data."""
    q = PriorityQueue()
    for item in [(2, "b"), (1, "z"), (2, "a"), (0, "x")]:
        q.put_nowait(item)
    assert [q.get_nowait() for _ in range(4)] == [(0, "x"), (1, "z"), (2, "a"), (2, "b")]


# -- blocking, timeouts -------------------------------------------------------------------------


@pytest.mark.parametrize("cls", QUEUES)
def test_get_parks_until_a_producer_puts(cls: Any) -> None:
    """A blocking get parks the caller; the producer runs and its item is returned."""
    q, log = make(cls), []

    def producer() -> None:
        log.append("producer ran")
        q.put("item")

    p = spawn(producer)
    assert q.get() == "item"
    assert log == ["producer ran"]
    p.join()
    assert q.qsize() == 0


@pytest.mark.parametrize("cls", BOUNDED)
def test_put_parks_while_full_until_a_get_makes_room(cls: Any) -> None:
    """A blocking put on a full queue parks until a get frees a slot."""
    q = cls(1)
    q.put(1)
    p = spawn_parked(q.put, 2)
    assert q.full() and q.qsize() == 1
    assert q.get() == 1
    p.join()
    assert q.get_nowait() == 2


@pytest.mark.parametrize("cls", QUEUES)
def test_get_timeout_raises_empty_after_timeout(cls: Any) -> None:
    """get(timeout=t) on an empty queue raises queue.Empty after about t seconds."""
    q = make(cls)
    t0 = time.monotonic()
    with pytest.raises(stdlib_queue.Empty):
        q.get(timeout=0.1)
    assert_waited(time.monotonic() - t0, 0.1)


@pytest.mark.parametrize("cls", BOUNDED)
def test_put_timeout_raises_full_after_timeout(cls: Any) -> None:
    """put(timeout=t) on a full queue raises queue.Full after about t s; the item is not added."""
    q = cls(1)
    q.put("a")
    t0 = time.monotonic()
    with pytest.raises(stdlib_queue.Full):
        q.put("b", timeout=0.1)
    assert_waited(time.monotonic() - t0, 0.1)
    assert q.qsize() == 1 and q.unfinished_tasks == 1 and q.get_nowait() == "a"


def test_join_waits_until_every_item_is_task_done() -> None:
    """join() parks until task_done was called once per put item."""
    q, processed = Queue(), []
    for i in range(5):
        q.put(i)

    def worker() -> None:
        for _ in range(5):
            item = q.get()
            greensched.sleep(0)
            processed.append(item)
            q.task_done()

    w = spawn(worker)
    q.join()
    assert processed == [0, 1, 2, 3, 4] and q.unfinished_tasks == 0
    w.join()
    q.join()  # nothing outstanding: returns at once
    with pytest.raises(ValueError, match=r"^task_done\(\) called too many times$"):
        q.task_done()


def test_several_joiners_all_wake() -> None:
    """Every thread blocked in join() is released by the last task_done()."""
    q = Queue()
    q.put("x")
    joiners = [spawn_parked(q.join) for _ in range(3)]
    q.get()
    q.task_done()
    for j in joiners:
        j.join()
    assert all(j.done() for j in joiners)


# -- FIFO hand-offs ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", QUEUES)
def test_getters_are_served_in_arrival_order(cls: Any) -> None:
    """Parked getters receive items in the order they started waiting."""
    q = make(cls)
    getters = [spawn_parked(q.get) for _ in range(4)]
    for item in [30, 10, 40, 20]:
        q.put(item)
    assert [g.result() for g in getters] == [30, 10, 40, 20]
    assert q.empty()


@pytest.mark.parametrize("cls", BOUNDED)
def test_putters_are_served_in_arrival_order(cls: Any) -> None:
    """Parked putters on a full queue get in, one freed slot at a time, in arrival order."""
    q, order = cls(1), []
    q.put(0)
    putters = [spawn_parked(lambda i=i: (q.put(i), order.append(i)), i) for i in (1, 2, 3)]
    got = [q.get() for _ in range(4)]
    for p in putters:
        p.join()
    assert order == [1, 2, 3]
    assert got == [0, 1, 2, 3]


def test_a_freed_slot_is_kept_for_the_waiting_putter() -> None:
    """No barging: after a get frees a slot for a parked putter, a late-comer sees Full."""
    q = Queue(1)
    q.put("old")
    p = spawn_parked(q.put, "waiting")
    assert q.get() == "old"
    assert q.full()
    with pytest.raises(Full):
        q.put_nowait("late")
    p.join()
    assert [q.get_nowait()] == ["waiting"] and q.empty()


def test_putter_is_not_left_parked_when_its_item_goes_straight_to_a_getter() -> None:
    """Regression: a woken putter whose item is handed to a parked getter frees its slot,
    so the next parked putter gets in (as with the stdlib) instead of waiting forever."""
    q = Queue(1)
    q.put("A")
    p1 = spawn_parked(q.put, "B")
    p2 = spawn_parked(q.put, "C")
    assert q.get() == "A"  # a slot is reserved for p1
    assert q.get(timeout=5) == "B"  # we park; p1 hands "B" straight to us
    p1.join()
    p2.join(timeout=5)
    assert p2.done()
    assert q.get_nowait() == "C"


# -- nothing lost: killed waiters ------------------------------------------------------------------


@pytest.mark.parametrize("cls", QUEUES)
def test_killed_parked_getter_is_removed_cleanly(cls: Any) -> None:
    """Killing a parked getter does not swallow the next item: the next getter gets it."""
    q = make(cls)
    g1, g2 = spawn_parked(q.get), spawn_parked(q.get)
    g1.kill()
    q.put("item")
    assert g2.result() == "item"
    assert q.empty()


@pytest.mark.parametrize("cls", QUEUES)
def test_item_handed_to_killed_getter_stays_in_the_queue(cls: Any) -> None:
    """A getter handed an item and killed before it ran leaves the item in the queue."""
    q = make(cls)
    g = spawn_parked(q.get)
    q.put("item")
    g.kill()
    with pytest.raises(RuntimeError, match="was killed"):
        g.result()
    assert q.qsize() == 1
    assert q.get_nowait() == "item"


@pytest.mark.parametrize("cls", QUEUES)
def test_item_handed_to_killed_getter_goes_to_the_next_getter(cls: Any) -> None:
    """...or, if another getter waits, goes straight to that one."""
    q = make(cls)
    g1, g2 = spawn_parked(q.get), spawn_parked(q.get)
    q.put("item")  # handed to g1
    g1.kill()
    assert g2.result() == "item"
    assert q.empty()


def test_item_put_back_keeps_fifo_order() -> None:
    """A Queue item handed to a killed getter is put back at the front."""
    q = Queue()
    g = spawn_parked(q.get)
    q.put("first")  # handed to g
    q.put("second")  # no getter waits: buffered
    g.kill()
    assert [q.get_nowait(), q.get_nowait()] == ["first", "second"]
    assert q.unfinished_tasks == 2


@pytest.mark.parametrize("cls", BOUNDED)
def test_killed_putter_passes_its_reserved_slot_on(cls: Any) -> None:
    """A putter woken with a reserved slot and killed before it ran gives the slot to the
    next putter, or back to the queue when none waits."""
    q = cls(1)
    q.put(0)
    p1 = spawn_parked(q.put, 1)
    p2 = spawn_parked(q.put, 2)
    assert q.get() == 0  # slot reserved for p1
    p1.kill()
    p2.join()
    assert q.get_nowait() == 2 and q.empty()
    q.put(3)
    p3 = spawn_parked(q.put, 4)
    assert q.get() == 3  # slot reserved for p3
    p3.kill()
    assert not q.full()
    q.put_nowait(5)  # the slot came back
    assert q.get_nowait() == 5


def test_killed_parked_putter_is_removed_cleanly() -> None:
    """Killing a parked putter: its item never enters the queue, the next putter's does."""
    q = Queue(1)
    q.put(0)
    p1, p2 = spawn_parked(q.put, 1), spawn_parked(q.put, 2)
    p1.kill()
    assert q.get() == 0
    p2.join()
    assert q.get_nowait() == 2 and q.empty() and q.unfinished_tasks == 2


def test_producer_consumer_many_threads_loses_nothing() -> None:
    """Many producers and consumers over a small bounded queue: every item arrives once."""
    q: Queue = Queue(3)
    got: list[int] = []

    def producer(base: int) -> None:
        for i in range(50):
            q.put(base + i)

    def consumer() -> None:
        while True:
            item = q.get()
            if item is None:
                return
            got.append(item)
            q.task_done()

    consumers = [spawn(consumer) for _ in range(4)]
    producers = [spawn(producer, base) for base in range(0, 500, 100)]
    for p in producers:
        p.join()
    q.join()
    for _ in consumers:
        q.put(None)
    for c in consumers:
        c.join()
    assert sorted(got) == sorted(b + i for b in range(0, 500, 100) for i in range(50))
