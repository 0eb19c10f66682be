"""Safety under preemption: a 1 ms slice for a few seconds, and zero errors.

Each test hammers one hazard from docs/design.md §11 with several green threads
while the timer asks for a switch every millisecond, then checks that nothing went
wrong and nothing was lost, and that preemption really happened meanwhile.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import greensched
from greensched import Event, Lock, Queue, spawn
from tests.util import run_python

DURATION = 1.5  # seconds of hammering per test


@pytest.fixture(autouse=True)
def one_ms_slice() -> Iterator[None]:
    before = greensched.get_preemption()
    greensched.set_preemption(True, 1.0)
    yield
    greensched.set_preemption(*before)


def preemptions() -> int:
    return int(greensched.stats()["preemptions"])


def spin_for(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_printing_to_one_file_from_many_threads(tmp_path: Path) -> None:
    """No 'RuntimeError: reentrant call' from the buffered writer; every line arrives whole."""
    path = tmp_path / "out.txt"
    start = preemptions()
    with open(path, "w") as out:

        def printer(tag: int) -> int:
            n = 0
            end = time.monotonic() + DURATION
            while time.monotonic() < end:
                print(f"thread {tag} line {n} " + "x" * 40, file=out)
                n += 1
            return n

        threads = [spawn(printer, tag) for tag in range(6)]
        counts = [t.result() for t in threads]  # result() re-raises any RuntimeError
    lines = path.read_text().splitlines()
    assert len(lines) == sum(counts)
    per_thread = Counter(line.split()[1] for line in lines)
    assert per_thread == Counter({str(tag): n for tag, n in enumerate(counts)})
    assert all(line.endswith("x" * 40) for line in lines)
    assert preemptions() - start > 50


def test_printing_to_a_real_stdout_pipe_in_a_fresh_process() -> None:
    """The same, to the process's own stdout (a pipe) and stderr, outside pytest's capture."""
    proc = run_python(
        """
        import sys, time, greensched
        greensched.set_preemption(True, 1.0)
        def printer(tag):
            n = 0
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                print(f"t{tag} {n}")
                if n % 50 == 0:
                    print(f"t{tag} err {n}", file=sys.stderr)
                n += 1
            return n
        threads = [greensched.spawn(printer, i) for i in range(6)]
        counts = [t.result() for t in threads]
        print("TOTAL", sum(counts), greensched.stats()["preemptions"])
        """,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "reentrant" not in proc.stderr and "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    _, total, switched = lines[-1].split()
    assert len(lines) - 1 == int(total)
    assert int(switched) > 50


def test_logging_through_one_handler(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Several threads log through one StreamHandler: no logging errors, no lost records."""
    path = tmp_path / "log.txt"
    logger = logging.getLogger("greensched-safety-test")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(open(path, "w"))
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    start = preemptions()
    try:

        def log(tag: int) -> int:
            n = 0
            end = time.monotonic() + DURATION
            while time.monotonic() < end:
                logger.info("thread %d record %d", tag, n)
                n += 1
            return n

        counts = [t.result() for t in [spawn(log, tag) for tag in range(5)]]
    finally:
        logger.removeHandler(handler)
        handler.stream.close()
    lines = path.read_text().splitlines()
    assert len(lines) == sum(counts)
    assert all(line.startswith("INFO thread ") for line in lines)
    assert "Logging error" not in capsys.readouterr().err
    assert preemptions() - start > 50


def test_threads_importing_the_same_new_module(tmp_path: Path) -> None:
    """Concurrent first imports: no deadlock, and nobody sees a half-initialised module."""
    count = 6
    for i in range(count):
        (tmp_path / f"gs_slow_module_{i}.py").write_text(
            "import time\n"
            "PARTS = []\n"
            "_end = time.monotonic() + 0.05\n"
            "while time.monotonic() < _end:\n"  # a CPU-bound body: preemption would land here
            "    PARTS.append(len(PARTS))\n"
            "COMPLETE = True\n"
        )
    sys.path.insert(0, str(tmp_path))
    start = preemptions()
    try:

        def importer(offset: int) -> list[bool]:
            seen = []
            for i in range(count):
                spin_for(0.003)  # preempted out here, between imports
                module = __import__(f"gs_slow_module_{(i + offset) % count}")
                seen.append(getattr(module, "COMPLETE", False))
            return seen

        def spinner(stop: Event) -> None:
            while not stop.is_set():
                pass  # someone to be preempted in favour of

        stop = Event()
        spin = spawn(spinner, stop)
        results = [t.result(timeout=60) for t in [spawn(importer, k) for k in range(8)]]
        stop.set()
        spin.join()
    finally:
        sys.path.remove(str(tmp_path))
        for i in range(count):
            sys.modules.pop(f"gs_slow_module_{i}", None)
    assert all(all(seen) for seen in results), results
    assert preemptions() - start > 5


def test_counters_under_a_lock_lose_no_update() -> None:
    """A read-modify-write under Lock, preempted in the middle while others are ready.

    Each thread computes outside the lock for two slices and inside it for one and
    a half, so the holder is regularly preempted inside the critical section while
    the others are ready, and they then try to take the lock.
    """
    lock = Lock()
    state = {"value": 0}
    start = preemptions()

    def bump(n: int) -> None:
        for _ in range(n):
            spin_for(0.002)
            with lock:
                current = state["value"]
                spin_for(0.0015)
                state["value"] = current + 1

    threads = [spawn(bump, 60) for _ in range(6)]
    for t in threads:
        t.join()
    assert state["value"] == 6 * 60
    assert preemptions() - start > 20


def test_items_through_a_queue_are_neither_lost_nor_duplicated() -> None:
    q: Queue = Queue(maxsize=50)
    producers, per_producer, consumers = 4, 4_000, 3
    start = preemptions()
    done = object()

    def produce(p: int) -> None:
        for i in range(per_producer):
            if i % 100 == 0:
                spin_for(0.002)  # longer than a slice: preempted between queue operations
            q.put((p, i))

    def consume() -> list[Any]:
        got = []
        while (item := q.get()) is not done:
            got.append(item)
        return got

    cons = [spawn(consume) for _ in range(consumers)]
    prods = [spawn(produce, p) for p in range(producers)]
    for t in prods:
        t.join()
    for _ in cons:
        q.put(done)
    received = [item for t in cons for item in t.result()]
    assert len(received) == producers * per_producer
    assert set(received) == {(p, i) for p in range(producers) for i in range(per_producer)}
    for c in cons:  # each producer's items arrive in order at any one consumer
        mine = c.result()
        for p in range(producers):
            seq = [i for (pp, i) in mine if pp == p]
            assert seq == sorted(seq)
    assert preemptions() - start > 20


def test_with_exits_and_finally_clauses_always_run() -> None:
    """Preempted inside with blocks, their exits and finally clauses: all complete.

    (A `kill()` is different: like KeyboardInterrupt, it is raised wherever the
    thread was preempted, which may be inside an ``__exit__`` or a ``finally``.)
    """
    counts = Counter[str]()
    stop = Event()

    class Tracked:
        def __enter__(self) -> Tracked:
            counts["enter"] += 1
            return self

        def __exit__(self, *exc: Any) -> None:
            for _ in range(50):
                pass
            counts["exit"] += 1

    def worker() -> None:
        while not stop.is_set():
            with Tracked():
                try:
                    counts["try"] += 1
                    for _ in range(200):
                        pass
                finally:
                    for _ in range(50):
                        pass
                    counts["finally"] += 1

    start = preemptions()
    threads = [spawn(worker) for _ in range(6)]
    greensched.sleep(DURATION)
    stop.set()
    for t in threads:
        t.join()
    assert counts["enter"] == counts["exit"] > 100
    assert counts["try"] == counts["finally"]
    assert preemptions() - start > 50
