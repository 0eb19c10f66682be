"""A program run by test_multiprocessing.py: ``python mp_program.py START_METHOD SCENARIO``.

A file, not a ``-c`` snippet: spawn and forkserver children import the main module
to find the functions they run. It patches at its top, as a user's program would,
so spawn and forkserver children patch too when they import it.
"""

import greensched

greensched.patch_all()

import multiprocessing  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from greensched._core._greenthread import GreenThread  # noqa: E402
from greensched._core._hub import get_hub  # noqa: E402


def square(x):
    return x * x


def add(a, b):
    return a + b


def slow_square(x):
    time.sleep(0.3)
    return x * x


def forever(_):
    time.sleep(60)


def produce(q, n):
    for i in range(n):
        q.put(("item", i))
    q.put(None)


def echo(conn):
    while True:
        msg = conn.recv()
        if msg is None:
            break
        conn.send(msg)
    conn.close()


def bump(ns, lock, d, n):
    for _ in range(n):
        with lock:
            ns.value += 1
    d[os.getpid()] = n


class Ticker:
    """A green thread that sleeps in 10 ms steps: it ticks only if the parent is not blocked."""

    def __init__(self):
        self.ticks = 0
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            time.sleep(0.01)
            self.ticks += 1

    def done(self):
        self.stop = True
        self.thread.join()
        return self.ticks


def check(cond, what):
    if not cond:
        print("FAILED:", what, flush=True)
        sys.exit(1)


def pool_scenario(ctx):
    with ctx.Pool(2) as pool:
        check(pool.map(square, range(20)) == [x * x for x in range(20)], "map")
        check(list(pool.imap(square, range(10))) == [x * x for x in range(10)], "imap")
        check(sorted(pool.imap_unordered(square, range(10))) == [x * x for x in range(10)], "imap_unordered")
        check(pool.starmap(add, [(1, 2), (3, 4)]) == [3, 7], "starmap")
        check(pool.apply_async(add, (2, 3)).get(timeout=30) == 5, "apply_async")
        check(pool.apply(add, (5, 6)) == 11, "apply")
        # While the result handler waits on the pipe, the parent's other green threads run,
        # and the pool's helper threads are green threads parked on the netpoller.
        ticker = Ticker()
        result = pool.map_async(slow_square, [1, 2])
        helpers = [pool._result_handler, pool._task_handler, pool._worker_handler]
        check(all(isinstance(get_hub()._threads.get(t.ident), GreenThread) for t in helpers),
              "the pool's helper threads are green threads")
        time.sleep(0.1)
        waiting = get_hub()._threads[pool._result_handler.ident]._waiting_on or ""
        check("read" in waiting, f"result handler parked on a read, not {waiting!r}")
        check(result.get(timeout=30) == [1, 4], "map_async")
        ticks = ticker.done()
        check(ticks >= 10, f"the parent kept running beside the pool ({ticks} ticks in 0.3 s)")
    # close/join
    pool = ctx.Pool(2)
    async_results = [pool.apply_async(square, (i,)) for i in range(8)]
    pool.close()
    pool.join()
    check([r.get(timeout=5) for r in async_results] == [i * i for i in range(8)], "close/join")
    # terminate with work in flight
    pool = ctx.Pool(2)
    pool.map_async(forever, range(4))
    time.sleep(0.2)
    started = time.monotonic()
    pool.terminate()
    pool.join()
    check(time.monotonic() - started < 10, "terminate stops workers stuck in a task")


def queue_scenario(ctx):
    q = ctx.Queue()
    p = ctx.Process(target=produce, args=(q, 500))
    ticker = Ticker()
    p.start()
    items = []
    while True:
        item = q.get(timeout=30)
        if item is None:
            break
        items.append(item)
    p.join(timeout=30)
    check(items == [("item", i) for i in range(500)], "every item once, in order")
    check(p.exitcode == 0, f"producer exit code {p.exitcode}")
    try:
        q.get(timeout=0.2)
        check(False, "get on an empty queue times out")
    except Exception as exc:  # queue.Empty
        check(type(exc).__name__ == "Empty", f"Empty, not {exc!r}")
    ticker.done()
    # Pipe: recv and poll, both ends busy from green threads.
    parent, child = ctx.Pipe()
    p = ctx.Process(target=echo, args=(child,))
    p.start()
    check(not parent.poll(0.05), "poll times out with nothing there")
    big = b"x" * 1_000_000
    for msg in ("hello", big, list(range(1000))):
        parent.send(msg)
        check(parent.poll(30), "poll sees the answer")
        check(parent.recv() == msg, "echoed")
    parent.send(None)
    p.join(timeout=30)
    check(p.exitcode == 0, "echo exit code")


def manager_scenario(ctx):
    with ctx.Manager() as manager:
        ns = manager.Namespace()
        ns.value = 0
        lock = manager.Lock()
        d = manager.dict()
        procs = [ctx.Process(target=bump, args=(ns, lock, d, 50)) for _ in range(2)]
        for p in procs:
            p.start()
        # Green threads of the parent use the manager at the same time.
        threads = [threading.Thread(target=bump, args=(ns, lock, d, 50)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for p in procs:
            p.join(timeout=60)
        check(ns.value == 250, f"namespace counter {ns.value} != 250")
        check(len(d) == 3 and sum(d.values()) == 150, f"dict {dict(d)}")
        mq = manager.Queue()
        mq.put("x")
        check(mq.get(timeout=10) == "x", "manager queue")


def executor_scenario(ctx):
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2, mp_context=ctx) as executor:
        check(list(executor.map(square, range(10))) == [x * x for x in range(10)], "executor map")
        check(executor.submit(add, 1, 2).result(timeout=30) == 3, "executor submit")


if __name__ == "__main__":
    method, scenario = sys.argv[1], sys.argv[2]
    ctx = multiprocessing.get_context(method)
    began = time.monotonic()
    {"pool": pool_scenario, "queue": queue_scenario, "manager": manager_scenario,
     "executor": executor_scenario}[scenario](ctx)
    print(f"ok {time.monotonic() - began:.2f}", flush=True)
