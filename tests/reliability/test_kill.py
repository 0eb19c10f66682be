"""Killing green threads wherever they park: nothing stays behind, nothing is lost.

tests/core covers one kill per primitive (a sleeper, a lock waiter, a queue getter,
an fd waiter). Here every way of parking goes through the same checks: the kill
lands, the thread's ``finally`` runs, the netpoller's table *and the selector's
own map* hold nothing for it, no timer of its stays pending, and the resource it
waited on still works for the others. Then the same with hundreds of threads
parked on everything at once, and kills that land after a hand-off (an item, a
lock, a permit given to a thread that is killed before it runs).
"""

from __future__ import annotations

import json
import os
import socket as stdsocket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import greensched
from greensched import Condition, Event, Lock, Queue, RLock, Semaphore, spawn
from greensched._core._hub import get_hub
from greensched.net import socket as gsocket
from tests.util import run_python


def registrations() -> tuple[int, int]:
    """(fds in the netpoller's table, keys in its selector's map, the wake-up pipe included).

    The netpoller may keep a socket's registration between waits while the socket
    lives (lazy deregistration), so this is (0, 1) only once the files are closed.
    """
    netpoll = get_hub()._netpoll
    return len(netpoll._fds), len(netpoll._selector.get_map())


def waits() -> int:
    """How many fds some green thread waits on now: 0 as soon as the waiter is gone."""
    netpoll = get_hub()._netpoll
    assert netpoll.waiting == sum(1 for w in netpoll._fds.values() if w.mask())
    return int(netpoll.waiting)


def wait_parked(*threads: greensched.GreenThread) -> None:
    deadline = time.monotonic() + 10
    while not all(t.state == "PARKED" for t in threads):
        assert time.monotonic() < deadline, f"never parked: {threads}"
        greensched.sleep(0)


class Case:
    """One way of parking: ``block()`` parks; ``check()`` proves the resource still works."""

    def __init__(self) -> None:
        self.closers: list[Any] = []

    def block(self) -> None:
        raise NotImplementedError

    def check(self) -> None:
        pass

    def close(self) -> None:
        for c in self.closers:
            c.close()


class Recv(Case):
    def __init__(self, timeout: Any = None) -> None:
        super().__init__()
        self.a, self.b = gsocket.socketpair()
        self.b.settimeout(timeout)
        self.closers += [self.a, self.b]

    def block(self) -> None:
        self.b.recv(10)

    def check(self) -> None:
        self.a.sendall(b"still works")
        assert self.b.recv(100) == b"still works"


class Sendall(Case):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = gsocket.socketpair()
        self.closers += [self.a, self.b]

    def block(self) -> None:
        self.a.sendall(b"x" * (16 << 20))  # nobody reads: parks once the buffers are full

    def check(self) -> None:
        reader = spawn(lambda: len(self.b.recv(1 << 20)))
        assert reader.result(timeout=5) > 0
        from tests.util import drain
        drain(self.b)
        self.a.setblocking(True)
        self.a.sendall(b"end")


class Accept(Case):
    def __init__(self) -> None:
        super().__init__()
        self.listener = gsocket.create_server(("127.0.0.1", 0))
        self.closers.append(self.listener)

    def block(self) -> None:
        self.listener.accept()

    def check(self) -> None:
        with gsocket.create_connection(self.listener.getsockname(), timeout=5):
            conn, _ = self.listener.accept()
            conn.close()


class Connect(Case):
    """connect() to a listener whose backlog is full: parks until writable, forever."""

    def __init__(self) -> None:
        super().__init__()
        server = stdsocket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        self.closers.append(server)
        for _ in range(32):
            filler = stdsocket.socket()
            self.closers.append(filler)
            filler.settimeout(0.2)
            try:
                filler.connect(server.getsockname())
            except TimeoutError:
                break
        else:
            self.close()
            pytest.skip("this kernel never lets the loopback backlog fill up")
        self.address = server.getsockname()
        self.sock = gsocket.socket()
        self.closers.append(self.sock)

    def block(self) -> None:
        self.sock.connect(self.address)


class Locked(Case):
    def __init__(self, factory: Callable[[], Any], timeout: Any = None) -> None:
        super().__init__()
        self.lock = factory()
        self.timeout = timeout
        self.lock.acquire()

    def block(self) -> None:
        if self.timeout is None:
            self.lock.acquire()
        else:
            self.lock.acquire(timeout=self.timeout)

    def check(self) -> None:
        self.lock.release()
        taker = spawn(lambda: self.lock.acquire(timeout=5) and (self.lock.release() or True))
        assert taker.result(timeout=5) is True


class ConditionWait(Case):
    def __init__(self) -> None:
        super().__init__()
        self.cond = Condition()

    def block(self) -> None:
        with self.cond:
            self.cond.wait()

    def check(self) -> None:
        woke = Event()

        def waiter() -> None:
            with self.cond:
                woke.set()
                assert self.cond.wait(5)

        t = spawn(waiter)
        woke.wait()
        with self.cond:
            self.cond.notify()  # must reach the live waiter, not the dead one
        t.result(timeout=5)


class QueueGet(Case):
    def __init__(self) -> None:
        super().__init__()
        self.q: Queue = Queue()

    def block(self) -> None:
        self.q.get()

    def check(self) -> None:
        getter = spawn(self.q.get, timeout=5)
        greensched.sleep(0)
        self.q.put("item")
        assert getter.result(timeout=5) == "item"


class QueuePut(Case):
    def __init__(self) -> None:
        super().__init__()
        self.q: Queue = Queue(maxsize=1)
        self.q.put("first")

    def block(self) -> None:
        self.q.put("never")

    def check(self) -> None:
        assert self.q.get_nowait() == "first"
        self.q.put_nowait("second")  # the dead putter's item never went in, nor holds a slot
        assert self.q.get_nowait() == "second" and self.q.empty()


class Sleep(Case):
    def block(self) -> None:
        greensched.sleep(3600)


class WaitFds(Case):
    def __init__(self) -> None:
        super().__init__()
        self.r, self.w = os.pipe()

    def block(self) -> None:
        greensched.wait_fds([self.r], [], 3600)

    def check(self) -> None:
        os.write(self.w, b"x")
        assert greensched.wait_fds([self.r], [], 5)

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


class WaitReadable(WaitFds):
    def block(self) -> None:
        greensched.wait_readable(self.r)


class Join(Case):
    def __init__(self) -> None:
        super().__init__()
        self.gate = Event()
        self.target = spawn(self.gate.wait)

    def block(self) -> None:
        self.target.join()

    def check(self) -> None:
        self.gate.set()
        self.target.join(5)
        assert self.target.done()


CASES: dict[str, Callable[[], Case]] = {
    "recv": Recv,
    "recv-with-timeout": lambda: Recv(timeout=3600),
    "sendall": Sendall,
    "accept": Accept,
    "connect": Connect,
    "lock": lambda: Locked(Lock),
    "lock-with-timeout": lambda: Locked(Lock, 3600),
    "rlock": lambda: Locked(RLock),
    "semaphore": lambda: Locked(lambda: Semaphore(1)),
    "condition": ConditionWait,
    "queue-get": QueueGet,
    "queue-put": QueuePut,
    "sleep": Sleep,
    "wait_fds": WaitFds,
    "wait_readable": WaitReadable,
    "join": Join,
}


@pytest.fixture
def clean() -> Iterator[None]:
    """The test starts and must end with nothing registered and no timer pending."""
    assert registrations() == (0, 1)
    timers = len(get_hub()._timers)
    yield
    assert registrations() == (0, 1), "a killed thread left a registration behind"
    assert len(get_hub()._timers) == timers, "a killed thread left a timer behind"


@pytest.mark.parametrize("name", list(CASES))
def test_a_thread_killed_while_parked_cleans_up(name: str, clean: None) -> None:
    case = CASES[name]()
    try:
        finals: list[str] = []
        timers = len(get_hub()._timers)

        def victim() -> None:
            try:
                case.block()
            finally:
                finals.append("finally ran")

        thread = spawn(victim)
        wait_parked(thread)
        start = time.monotonic()
        thread.kill(timeout=5)
        assert time.monotonic() - start < 1.0
        assert thread.done() and finals == ["finally ran"]
        with pytest.raises(RuntimeError, match="was killed"):
            thread.result()
        assert waits() == 0
        assert len(get_hub()._timers) <= timers
        case.check()
        assert waits() == 0
    finally:
        case.close()
    assert registrations() == (0, 1)


def test_hundreds_parked_on_everything_killed_at_once(clean: None) -> None:
    """24 threads on each kind of wait, all killed in one go (non-blocking kills)."""
    cases = {name: CASES[name]() for name in CASES if name not in ("connect", "sendall")}
    try:
        finals: list[str] = []

        def victim(case: Case, name: str) -> None:
            try:
                case.block()
            finally:
                finals.append(name)

        threads: list[greensched.GreenThread] = []
        expected: Counter[str] = Counter()
        for name, case in cases.items():
            # recv/accept/wait_readable are exclusive per fd: one parked reader each.
            n = 1 if name in ("recv", "recv-with-timeout", "accept", "wait_readable") else 24
            threads += [spawn(victim, case, name) for _ in range(n)]
            expected[name] = n
        wait_parked(*threads)
        for t in threads:
            t.kill(block=False)
        for t in threads:
            t.join(5)
        assert all(t.done() for t in threads)
        assert Counter(finals) == expected  # every finally ran, once
        assert waits() == 0
        for case in cases.values():
            case.check()
    finally:
        for case in cases.values():
            case.close()
    assert registrations() == (0, 1)


def test_items_handed_to_killed_getters_are_not_lost() -> None:
    """300 getters; 200 items put (each handed to a parked getter); every other getter
    killed before it could run: every item is received exactly once or left queued."""
    q: Queue = Queue()
    got: list[int] = []
    getters = [spawn(lambda: got.append(q.get())) for _ in range(300)]
    wait_parked(*getters)
    for i in range(200):
        q.put(i)  # wakes getter i with item i, which has not run yet
    for g in getters[:200:2]:
        g.kill(block=False)  # half of the handed items go back (or on to getters 200+)
    greensched.sleep(0.05)
    for g in getters:
        if not g.done():
            g.kill()
    left = []
    while not q.empty():
        left.append(q.get_nowait())
    assert sorted(got + left) == list(range(200)), (len(got), len(left))
    assert len(got) >= 100


@pytest.mark.parametrize("factory", [Lock, RLock, lambda: Semaphore(3)], ids=["Lock", "RLock", "Semaphore"])
def test_a_lock_handed_to_a_killed_waiter_passes_on(factory: Callable[[], Any]) -> None:
    """The lock (or permit) given to a waiter that is killed before it runs goes to the
    next live waiter; at the end nobody holds it and it works as new."""
    lock = factory()
    holders = 3 if not isinstance(lock, (Lock, RLock)) else 1
    for _ in range(holders):
        lock.acquire()
    inside = [0]
    most = [0]
    served: list[int] = []

    def waiter(i: int) -> None:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            greensched.sleep(0.001)
            inside[0] -= 1
            served.append(i)

    waiters = [spawn(waiter, i) for i in range(60)]
    wait_parked(*waiters)
    for _ in range(holders):
        lock.release()  # hands the lock to the first waiter(s), not yet running
    killed = waiters[:holders] + waiters[10:20]
    for w in killed:
        w.kill(block=False)
    for w in waiters:
        w.join(10)
    assert all(w.done() for w in waiters)
    alive = [i for i, w in enumerate(waiters) if w not in killed]
    assert sorted(served) == alive
    assert most[0] <= holders
    for _ in range(holders):
        assert lock.acquire(timeout=1)
    for _ in range(holders):
        lock.release()


KILL_SUBPROCESS = """
import greensched
greensched.patch_all()
import gc, json, os, subprocess, time
from greensched._core._hub import get_hub

def children():
    me, n = str(os.getpid()), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[1] == me:
                    n += 1
        except OSError:
            pass
    return n

def state():
    gc.collect()
    netpoll = get_hub()._netpoll
    return [len(os.listdir("/proc/self/fd")), children(), len(netpoll._fds), len(netpoll._selector.get_map())]

cases = {
    "run": lambda: subprocess.run(["sleep", "60"]),
    "run-feeding-stdin": lambda: subprocess.run(["sh", "-c", "exec sleep 60"], input=b"x" * (4 << 20)),
    "run-reading-stdout": lambda: subprocess.run(
        ["sh", "-c", "head -c 5000000 /dev/zero; exec sleep 60"], capture_output=True),
    "check_output": lambda: subprocess.check_output(["sleep", "60"]),
    "with-popen-wait": lambda: subprocess.Popen(["sleep", "60"]).__enter__().wait(),
}
before = state()
out = {}
for name, fn in cases.items():
    finals = []
    def victim():
        try:
            fn()
        finally:
            finals.append(name)
    t = greensched.spawn(victim)
    deadline = time.monotonic() + 10
    while t.state != "PARKED" and time.monotonic() < deadline:
        greensched.sleep(0.01)
    greensched.sleep(0.1)
    t.kill(timeout=10)
    if name == "with-popen-wait":  # no with-exit ran: the child is the caller's to end
        for p in list(subprocess._active):
            p.kill(); p.wait()
    out[name] = {"done": t.done(), "finally": finals == [name], "state": state()}
print(json.dumps({"before": before, "cases": out}))
"""


def test_a_thread_killed_in_a_subprocess_call_leaves_no_child_fd_or_registration() -> None:
    """subprocess.run & co. kill and reap their child when the calling thread is killed
    (as on KeyboardInterrupt), close its pipes, and leave the netpoller clean."""
    proc = run_python(KILL_SUBPROCESS, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.splitlines()[-1])
    for name, case in r["cases"].items():
        assert case["done"] and case["finally"], (name, case)
        assert case["state"] == r["before"], (name, case, r["before"])  # [fds, children, netpoll, map]


def test_killing_a_patched_threading_thread_is_not_reported_as_a_failure() -> None:
    """Regression: a threading.Thread (or a _thread.start_new_thread function) killed
    with GreenThread.kill printed "Exception in thread ...: GreenThreadExit" (through
    threading.excepthook, or sys.unraisablehook for _thread). A kill is not a failure
    (as SystemExit is not); real exceptions are still reported."""
    proc = run_python(
        """
        import greensched
        greensched.patch_all()
        import _thread, threading, time
        box = []
        def work():
            box.append(greensched.current_thread())
            try:
                time.sleep(60)
            finally:
                box.append("finally")
        t = threading.Thread(target=work, name="worker")
        t.start()
        time.sleep(0.05)
        box.pop(0).kill()
        t.join(5)
        _thread.start_new_thread(work, ())
        time.sleep(0.05)
        box.pop(1).kill()
        def bad():
            raise ValueError("still reported")
        t2 = threading.Thread(target=bad, name="bad")
        t2.start()
        t2.join()
        print(t.is_alive(), box)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False ['finally', 'finally']"
    assert "GreenThreadExit" not in proc.stderr, proc.stderr
    assert "Exception in thread bad" in proc.stderr and "ValueError: still reported" in proc.stderr


def test_a_thread_is_never_preempted_in_its_own_bootstrap_frame() -> None:
    """Regression: a tick landing at GreenThread._bootstrap's entry (before its try)
    was a safe point; a kill thrown there escaped the carrier into the hub, which
    handed the GreenThreadExit to the main thread (the killing churn hit it about
    once per 10,000 kills). A root frame is greensched's own code when innermost;
    user code below it stays preemptible."""
    from greensched._core._greenthread import GreenThread
    from greensched._core._safepoints import RUNTIME, atomic_reason

    def where() -> tuple[Any, Any, Any]:
        frame: Any = sys._getframe()
        user = frame
        run = bootstrap = None
        while frame is not None:
            if frame.f_code is GreenThread.run.__code__:
                run = frame
            if frame.f_code is GreenThread._bootstrap.__code__:
                bootstrap = frame
            frame = frame.f_back
        return atomic_reason(bootstrap), atomic_reason(run), atomic_reason(user)

    assert spawn(where).result() == (RUNTIME, RUNTIME, None)
