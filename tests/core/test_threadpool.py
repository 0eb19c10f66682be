"""to_thread: real OS threads for blocking work, results and errors back through the hub."""

from __future__ import annotations

import threading
import time

import pytest

import greensched
from greensched import Event, spawn
from greensched.threadpool import ThreadPool, to_thread

from ..util import run_python


def test_to_thread_returns_the_value_and_runs_on_another_os_thread() -> None:
    me = threading.get_ident()
    value, ident = to_thread(lambda a, b=0: (a + b, threading.get_ident()), 40, b=2)
    assert value == 42 and ident != me


def test_to_thread_reraises_the_exception() -> None:
    def fail() -> None:
        raise KeyError("from the pool")

    with pytest.raises(KeyError, match="from the pool"):
        to_thread(fail)


def test_other_green_threads_run_while_one_waits_on_a_blocking_call() -> None:
    """A real time.sleep(0.3) on the pool does not stop a ticker in the hub."""
    ticks: list[float] = []
    stop = Event()

    def ticker() -> None:
        while not stop.is_set():
            greensched.sleep(0.01)
            ticks.append(time.monotonic())

    t = spawn(ticker)
    start = time.monotonic()
    to_thread(time.sleep, 0.3)
    stop.set()
    t.join()
    assert time.monotonic() - start >= 0.29
    assert len(ticks) >= 10


def test_many_blocking_calls_run_concurrently() -> None:
    """Eight 0.2 s blocking calls from eight green threads overlap on the pool."""
    start = time.monotonic()
    threads = [spawn(to_thread, time.sleep, 0.2) for _ in range(8)]
    for t in threads:
        t.join()
    assert time.monotonic() - start < 1.2  # serially 1.6 s


def test_killing_a_waiter_drops_the_result_and_releases_the_hub() -> None:
    """A killed waiter dies at once; the pool job still finishes; nothing is left held."""
    started = threading.Event()

    def slow() -> str:
        started.set()
        time.sleep(0.2)
        return "late"

    waiter = spawn(to_thread, slow)
    while not started.is_set():
        greensched.sleep(0.005)
    waiter.kill()
    assert waiter.done()
    hub = greensched._core._hub.get_hub()
    deadline = time.monotonic() + 5
    while hub._external and time.monotonic() < deadline:
        greensched.sleep(0.01)
    assert hub._external == 0


def test_bad_input() -> None:
    with pytest.raises(TypeError, match="needs a callable"):
        to_thread(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        ThreadPool(0)


def test_to_thread_works_in_a_forked_child_of_a_process_that_used_it() -> None:
    """The child has none of the parent's pool threads: it must not wait for them (it hung)."""
    proc = run_python(
        """
        import os, threading, greensched
        from greensched import to_thread
        parent_ident = to_thread(threading.get_ident)   # the pool has an idle worker now
        greensched.sleep(0.05)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                with greensched.Timeout(10):
                    if to_thread(lambda: 6 * 7) == 42:
                        code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), to_thread(lambda: "parent still works"))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split(None, 1) == ["0", "parent still works\n"], proc.stdout + proc.stderr
