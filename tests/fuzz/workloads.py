"""Small concurrent programs with invariants, for the schedule fuzzer.

Each takes a namespace of primitives (greensched's own, or the stdlib's after
``patch_all()``: see patched_program.py), runs a few green threads that contend on
them, joins them, and asserts its invariants: no lost wake-up (every waiter
returns, in time), no item lost or duplicated, counts that only a working lock
keeps. The runner (`run_one`) then checks what is common to all: no green thread
left behind, parked with nothing to wake it, and a timer heap whose length is the
number of live timers.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import greensched
from greensched._core._hub import get_hub

__all__ = ["WORKLOADS", "green_primitives", "run_one"]

JOIN_TIMEOUT = 20.0


def green_primitives() -> SimpleNamespace:
    import greensched.queue as gq

    return SimpleNamespace(
        Thread=lambda target, args=(): _GreenStarter(target, args),
        Lock=greensched.Lock, RLock=greensched.RLock, Condition=greensched.Condition,
        Semaphore=greensched.Semaphore, BoundedSemaphore=greensched.BoundedSemaphore,
        Event=greensched.Event, Queue=gq.Queue, LifoQueue=gq.LifoQueue,
        PriorityQueue=gq.PriorityQueue, SimpleQueue=gq.SimpleQueue, Empty=gq.Empty,
        sleep=greensched.sleep, socketpair=_green_socketpair,
    )


def _green_socketpair() -> tuple[Any, Any]:
    from greensched.net import socket as gsocket

    return gsocket.socketpair()


class _GreenStarter:
    """threading.Thread's start/join over greensched.spawn."""

    def __init__(self, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.target, self.args, self.thread = target, args, None

    def start(self) -> None:
        self.thread = greensched.spawn(self.target, *self.args)

    def join(self, timeout: float) -> None:
        assert self.thread is not None
        self.thread.join(timeout)

    def is_alive(self) -> bool:
        return self.thread is not None and not self.thread.done()


def _run_all(p: SimpleNamespace, targets: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> None:
    threads = [p.Thread(target=t, args=a) for t, a in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    stuck = [t for t in threads if t.is_alive()]
    assert not stuck, f"{len(stuck)} thread(s) never finished: a lost wake-up"


def locks(p: SimpleNamespace) -> None:
    """A read-modify-write over several lines: only mutual exclusion keeps the count."""
    lock, rlock, box = p.Lock(), p.RLock(), [0, 0]

    def bump(n: int) -> None:
        for _ in range(n):
            with lock:
                value = box[0]
                value += 1
                box[0] = value
            with rlock:
                with rlock:
                    value = box[1]
                    box[1] = value + 1

    _run_all(p, [(bump, (40,)) for _ in range(6)])
    assert box == [240, 240], box


def condition(p: SimpleNamespace) -> None:
    """A bounded buffer on one Condition: every item consumed exactly once."""
    cond, buf, got, limit = p.Condition(), [], [], 3

    def producer(base: int) -> None:
        for i in range(30):
            with cond:
                while len(buf) >= limit:
                    cond.wait()
                buf.append(base + i)
                cond.notify_all()

    def consumer(n: int) -> None:
        for _ in range(n):
            with cond:
                while not buf:
                    cond.wait()
                got.append(buf.pop(0))
                cond.notify_all()

    _run_all(p, [(producer, (0,)), (producer, (1000,)), (consumer, (20,)), (consumer, (40,))])
    assert sorted(got) == sorted(list(range(30)) + list(range(1000, 1030))), got


def semaphores(p: SimpleNamespace) -> None:
    """At most three holders at once, and every acquire released."""
    sem, inside, peak = p.BoundedSemaphore(3), [0], [0]

    def worker() -> None:
        for _ in range(15):
            with sem:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
                p.sleep(0)
                inside[0] -= 1

    _run_all(p, [(worker, ()) for _ in range(7)])
    assert peak[0] <= 3 and inside[0] == 0, (peak, inside)
    for _ in range(3):
        assert sem.acquire(timeout=1)
    assert not sem.acquire(blocking=False)
    for _ in range(3):
        sem.release()


def events(p: SimpleNamespace) -> None:
    """Rounds of events with many waiters: every waiter of every round wakes."""
    rounds, done, count = [p.Event() for _ in range(10)], p.Semaphore(0), 6
    woke = [0]

    def waiter() -> None:
        for event in rounds:
            assert event.wait(JOIN_TIMEOUT), "lost wake-up"
            woke[0] += 1
            done.release()

    def driver() -> None:
        for event in rounds:
            event.set()
            for _ in range(count):
                assert done.acquire(timeout=JOIN_TIMEOUT), "a waiter never reported"
            event.clear()
            assert not event.is_set()

    _run_all(p, [(waiter, ()) for _ in range(count)] + [(driver, ())])
    assert woke[0] == 60, woke


def queues(p: SimpleNamespace) -> None:
    """Producers and consumers through bounded FIFO, LIFO, priority and simple queues."""
    for kind in (p.Queue, p.LifoQueue, p.PriorityQueue):
        q, got = kind(maxsize=4), []

        def producer(base: int, q: Any = q) -> None:
            for i in range(25):
                q.put(base + i)

        def consumer(q: Any = q, got: list[int] = got) -> None:
            while True:
                item = q.get()
                q.task_done()
                if item < 0:
                    return
                got.append(item)

        threads = [p.Thread(target=producer, args=(b,)) for b in (0, 100, 200)]
        consumers = [p.Thread(target=consumer) for _ in range(2)]
        for t in threads + consumers:
            t.start()
        for t in threads:
            t.join(JOIN_TIMEOUT)
        q.join()  # every item taken and done: then the sentinels (LIFO would take them first)
        for _ in consumers:
            q.put(-1)
        for t in consumers:
            t.join(JOIN_TIMEOUT)
        assert not any(t.is_alive() for t in threads + consumers), "lost wake-up"
        assert sorted(got) == sorted(range(0, 25)) + sorted(range(100, 125)) + sorted(range(200, 225)), got
    sq, out = p.SimpleQueue(), []

    def reader() -> None:
        for _ in range(40):
            out.append(sq.get(timeout=JOIN_TIMEOUT))

    def writer(base: int) -> None:
        for i in range(20):
            sq.put(base + i)

    _run_all(p, [(reader, ()), (writer, (0,)), (writer, (50,))])
    assert sorted(out) == list(range(20)) + list(range(50, 70)), out


def timers(p: SimpleNamespace) -> None:
    """Timed waits that are satisfied (cancelled timers), that expire, and sleeps."""
    lock, ev, q = p.Lock(), p.Event(), p.Queue()
    expired, ok = [0], [0]

    def timed_locker() -> None:
        for _ in range(10):
            if lock.acquire(timeout=JOIN_TIMEOUT):
                ok[0] += 1
                p.sleep(0)
                lock.release()

    def expirer() -> None:
        for _ in range(3):
            try:
                q.get(timeout=0.001)
            except p.Empty:
                expired[0] += 1

    def event_waiter() -> None:
        assert ev.wait(JOIN_TIMEOUT)

    def setter() -> None:
        for _ in range(20):
            p.sleep(0)
        p.sleep(0.002)
        ev.set()

    _run_all(p, [(timed_locker, ()) for _ in range(4)] + [(expirer, ()), (setter, ())]
             + [(event_waiter, ()) for _ in range(20)])
    assert ok[0] == 40 and expired[0] == 3, (ok, expired)


def fd_waits(p: SimpleNamespace) -> None:
    """Ping-pong over socket pairs: every byte comes back, in order."""
    pairs = [p.socketpair() for _ in range(3)]
    try:
        def echo(s: Any) -> None:
            while True:
                data = s.recv(4096)
                if not data:
                    return
                s.sendall(data)

        def client(s: Any, tag: int) -> None:
            for i in range(20):
                msg = bytes([tag]) * (1 + i * 37)
                s.sendall(msg)
                back = b""
                while len(back) < len(msg):
                    back += s.recv(65536)
                assert back == msg
            s.shutdown(socket.SHUT_WR)

        _run_all(p, [(echo, (b,)) for _, b in pairs] + [(client, (a, i)) for i, (a, _) in enumerate(pairs)])
    finally:
        for a, b in pairs:
            a.close()
            b.close()


WORKLOADS: dict[str, Callable[[SimpleNamespace], None]] = {
    "locks": locks, "condition": condition, "semaphores": semaphores, "events": events,
    "queues": queues, "timers": timers, "fd_waits": fd_waits,
}


def run_one(name: str, seed: int, p: SimpleNamespace) -> int:
    """Run workload ``name`` under seed ``seed``; check the common invariants. Returns the requests made."""
    from tests.fuzz.schedule import forced_schedule

    hub = get_hub()
    before = set(hub._threads)
    with forced_schedule(seed) as schedule:
        WORKLOADS[name](p)
    left = [t for i, t in list(hub._threads.items()) if i not in before]
    assert not left, "left behind: " + ", ".join(f"{t!r} waiting on {t._waiting_on!r}" for t in left)
    timers = hub._timers
    live = sum(1 for entry in timers._heap if entry[2] is not None)
    assert len(timers) == live, f"timer heap says {len(timers)} live timers, holds {live}"
    return schedule.requests
