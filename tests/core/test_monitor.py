"""Seeing inside: stats(), stack dumps, the dump signal, the blocking detector, richer reports."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

import greensched
from greensched import Event, GreenThread, Lock, Queue, spawn
from greensched._core._hub import get_hub
from greensched.monitor import BlockingDetector, start_blocking_detector, stop_blocking_detector
from tests.util import run_python


@pytest.fixture
def detector_stopped() -> Iterator[None]:
    yield
    stop_blocking_detector()


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    """Yield to other green threads until ``predicate()`` holds (generous bound)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        greensched.sleep(0.005)


# -- stats() ----------------------------------------------------------------------------------


def test_stats_counts_parked_threads_by_what_they_wait_on(pipe: tuple[int, int]) -> None:
    lock, never, queue = Lock(), Event(), Queue()
    lock.acquire()
    spawned = greensched.stats()["spawned"]
    sleeper = spawn(greensched.sleep, 30)
    threads = [
        sleeper,
        spawn(lock.acquire),
        spawn(never.wait),
        spawn(queue.get),
        spawn(greensched.wait_readable, pipe[0]),
        spawn(sleeper.join),
    ]
    wait_until(lambda: all(t.state == "PARKED" for t in threads))
    stats = greensched.stats()
    by = stats["parked_by"]
    assert (by["sleep"], by["lock"], by["event"], by["queue"], by["fd"], by["join"]) == (1, 1, 1, 1, 1, 1)
    assert stats["parked"] == sum(by.values()) == 6
    assert stats["spawned"] == spawned + 6
    assert stats["running"] == 1 and stats["threads"] >= 7
    for thread in threads:
        thread.kill()
    lock.release()


def test_stats_run_queue_wait_sees_a_thread_kept_waiting() -> None:
    """A READY thread kept off the CPU for 60 ms shows in the max and, among few samples, the p99."""
    started = Event()
    spawn(started.set)  # READY now; runs only when main lets the hub run
    with greensched.no_preempt():
        end = time.monotonic() + 0.06
        while time.monotonic() < end:
            pass
    started.wait()
    stats = greensched.stats()
    assert stats["run_queue_wait_max_ms"] >= 55.0
    assert (0.0 <= stats["run_queue_wait_p50_ms"] <= stats["run_queue_wait_p99_ms"]
            <= stats["run_queue_wait_max_ms"])
    assert 1 <= stats["run_queue_wait_samples"] <= 1024


def test_stats_window_is_bounded_and_recent() -> None:
    """After 2,000 quick switches the window holds the last 1,024 of them, all short."""
    def yielder() -> None:
        for _ in range(1000):
            greensched.sleep(0)

    a, b = spawn(yielder), spawn(yielder)
    a.join()
    b.join()
    stats = greensched.stats()
    assert stats["run_queue_wait_samples"] == 1024
    assert stats["run_queue_wait_p50_ms"] < 50.0  # generous: a sleep(0) round is microseconds


def test_stats_hub_poll_time_counts_idle_sleeps() -> None:
    before = greensched.stats()
    greensched.sleep(0.05)
    after = greensched.stats()
    assert after["hub_polls"] >= before["hub_polls"] + 1
    assert after["hub_poll_seconds"] - before["hub_poll_seconds"] >= 0.04


def test_stats_counts_requests_deferred_by_no_preempt(preemption_on: None) -> None:
    other = spawn(greensched.sleep, 0)  # someone is ready: a request comes after a slice
    before = greensched.stats()["deferred_requests"]
    with greensched.no_preempt():
        end = time.monotonic() + 10.0
        while greensched.stats()["deferred_requests"] == before and time.monotonic() < end:
            pass
    assert greensched.stats()["deferred_requests"] == before + 1  # one per section, not per tick
    other.join()


# -- stacks ----------------------------------------------------------------------------------


def parked_in_a_named_function(ev: Event) -> None:
    ev.wait()


def test_format_stacks_shows_every_thread_and_where_it_waits() -> None:
    ev = Event()
    parked = GreenThread(target=parked_in_a_named_function, args=(ev,), name="the-waiter", daemon=True)
    parked.start()
    not_started = GreenThread(target=ev.wait, name="never-started")
    wait_until(lambda: parked.state == "PARKED")
    text = greensched.format_stacks()
    assert f"green thread 'the-waiter' (ident {parked.ident}, PARKED, daemon, waits on Event.wait())" in text
    assert "in parked_in_a_named_function" in text and "ev.wait()" in text
    assert "greensched/sync.py" not in text  # the machinery at the ends is left out
    main = greensched.current_thread().ident
    assert f"green thread 'MainThread' (ident {main}, RUNNING)" in text
    assert "in test_format_stacks_shows_every_thread_and_where_it_waits" in text
    assert "never-started" not in text  # not started: not a thread of the hub yet
    buf = io.StringIO()
    greensched.dump_stacks(buf)
    assert "in parked_in_a_named_function" in buf.getvalue()
    ev.set()
    parked.join()
    del not_started


def test_dump_stacks_works_from_the_hub() -> None:
    """From a timer callback (the hub runs it): every green thread is suspended, all shown."""
    buf = io.StringIO()
    done = Event()

    def in_hub(_: Any) -> None:
        greensched.dump_stacks(buf)
        done.set()

    get_hub().call_later(0.0, in_hub)
    done.wait()
    text = buf.getvalue()
    assert "the hub is running" in text
    main = greensched.current_thread().ident
    assert f"green thread 'MainThread' (ident {main}, PARKED, waits on Event.wait())" in text
    assert "in test_dump_stacks_works_from_the_hub" in text


def test_dump_signal_prints_stacks_and_a_deadlock_is_still_reported() -> None:
    """GREENSCHED_DUMP_SIGNAL: a dump from a green thread and from the polling hub; then,
    with nothing left to wake anyone, DeadlockError as before (our handler wakes nobody)."""
    proc = run_python(
        """
        import os, signal, threading
        import greensched
        ev = greensched.Event()
        def parked_worker():
            ev.wait()
        worker = greensched.GreenThread(target=parked_worker, name="worker")
        worker.start()
        print(worker.ident, flush=True)
        greensched.sleep(0)
        os.kill(os.getpid(), signal.SIGUSR1)  # handled here, in main: main is RUNNING
        print("first dump done", flush=True)
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGUSR1)).start()  # while the hub sleeps
        greensched.sleep(1.0)
        try:
            ev2 = greensched.Event()
            ev2.wait()
        except greensched.DeadlockError:
            print("deadlock reported", flush=True)
        ev.set()
        """,
        env={"GREENSCHED_DUMP_SIGNAL": "SIGUSR1"},
    )
    assert proc.returncode == 0, proc.stderr
    ident, *words = proc.stdout.split()
    assert words == ["first", "dump", "done", "deadlock", "reported"]
    dumps = proc.stderr.split("greensched: 2 green threads in OS thread")
    assert len(dumps) == 3, proc.stderr
    assert "running: 'MainThread'" in dumps[1] and "the hub is running" in dumps[2]
    for dump in dumps[1:]:
        assert f"green thread 'worker' (ident {ident}, PARKED, waits on Event.wait())" in dump
        assert "in parked_worker" in dump
    assert "waits on sleep(1.0)" in dumps[2]


def test_set_dump_signal_installs_and_restores() -> None:
    previous = signal.getsignal(signal.SIGUSR2)
    buf = io.StringIO()
    greensched.set_dump_signal("usr2", buf)
    try:
        os.kill(os.getpid(), signal.SIGUSR2)
        for _ in range(1000):  # the handler runs at the next check of the eval loop
            if buf.getvalue():
                break
            time.sleep(0.001)
        assert "green thread 'MainThread'" in buf.getvalue()
        assert "in test_set_dump_signal_installs_and_restores" in buf.getvalue()
    finally:
        greensched.set_dump_signal(None)
    assert signal.getsignal(signal.SIGUSR2) is previous


@pytest.mark.parametrize("value, words", [
    ("SIGFOO", "'SIGFOO' is not a signal on this system"),
    ("SIGALRM", "SIGALRM is the preemption timer's signal"),
    ("INT", "SIGINT is Ctrl-C"),
    ("9", "SIGKILL cannot be caught"),
    ("ten", "is not a signal on this system"),
])
def test_bad_dump_signal_values_are_clear_errors(value: str, words: str) -> None:
    with pytest.raises(ValueError) as info:
        greensched.set_dump_signal(value)
    assert words in str(info.value) and "SIGUSR1" in str(info.value)


def test_bad_dump_signal_in_the_environment_names_the_variable() -> None:
    proc = run_python("import greensched", env={"GREENSCHED_DUMP_SIGNAL": "SIGFOO"})
    assert proc.returncode != 0
    assert "ValueError: GREENSCHED_DUMP_SIGNAL: 'SIGFOO' is not a signal" in proc.stderr
    assert "SIGUSR1" in proc.stderr


# -- the blocking detector ---------------------------------------------------------------------


def spin_without_yielding(detector: BlockingDetector) -> None:
    """Hold the CPU under no_preempt until the detector has reported us (bounded)."""
    with greensched.no_preempt():
        end = time.monotonic() + 10.0
        while detector.reports == 0 and time.monotonic() < end:
            pass


def test_blocking_detector_reports_a_thread_under_no_preempt_once(detector_stopped: None) -> None:
    buf = io.StringIO()
    detector = start_blocking_detector(0.05, file=buf)
    hog = GreenThread(target=spin_without_yielding, args=(detector,), name="hog")
    hog.start()
    hog.join()
    assert detector.reports == 1
    wait_until(lambda: "let go of the CPU" in buf.getvalue())
    stop_blocking_detector()
    text = buf.getvalue()
    assert text.count("has held the CPU") == 1, text
    assert f"green thread 'hog' (ident {hog.ident}) has held the CPU for" in text
    assert "it is inside no_preempt()" in text
    assert "in spin_without_yielding" in text and "while detector.reports == 0" in text
    assert f"green thread 'hog' (ident {hog.ident}) let go of the CPU after about" in text


def hash_a_big_buffer(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_blocking_detector_reports_a_long_c_call(detector_stopped: None, preemption_on: None) -> None:
    """sha256 of 300 MB is one C call (it releases the GIL, so the watcher runs); ~0.3 s here."""
    data = b"x" * 300_000_000
    other = spawn(greensched.sleep, 0.001)  # someone else exists (and soon wants the CPU)
    buf = io.StringIO()
    detector = start_blocking_detector(0.05, file=buf)
    hasher = GreenThread(target=hash_a_big_buffer, args=(data,), name="hasher")
    hasher.start()
    hasher.join()
    other.join()
    stop_blocking_detector()
    del data
    text = buf.getvalue()
    assert detector.reports == 1, text
    assert "green thread 'hasher'" in text and "in hash_a_big_buffer" in text
    assert "long call that does not return to Python" in text and "to_thread()" in text


def test_blocking_detector_is_quiet_while_threads_are_preempted(
        detector_stopped: None, preemption_on: None) -> None:
    """Two pure-Python spinners, preempted every slice: nothing to report at a 0.3 s threshold."""
    buf = io.StringIO()
    detector = start_blocking_detector(0.3, file=buf)

    def spin() -> None:
        end = time.monotonic() + 0.7
        while time.monotonic() < end:
            pass

    a, b = spawn(spin), spawn(spin)
    a.join()
    b.join()
    stop_blocking_detector()
    assert detector.reports == 0, buf.getvalue()
    assert buf.getvalue() == ""


def test_blocking_detector_rejects_bad_thresholds() -> None:
    for bad in (0, -1, "abc", float("nan"), 1e9):
        with pytest.raises(ValueError, match="threshold"):
            start_blocking_detector(bad)


def test_blocking_detector_from_the_environment() -> None:
    proc = run_python(
        """
        import time, greensched
        def spinner():
            with greensched.no_preempt():
                end = time.monotonic() + 0.5
                while time.monotonic() < end:
                    pass
        t = greensched.GreenThread(target=spinner, name="env-hog")
        t.start()
        t.join()
        print(t.ident)
        """,
        env={"GREENSCHED_BLOCKING_THRESHOLD_MS": "50"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("has held the CPU") == 1, proc.stderr
    assert f"green thread 'env-hog' (ident {proc.stdout.strip()}) has held the CPU" in proc.stderr
    assert "in spinner" in proc.stderr


def test_bad_blocking_threshold_in_the_environment_names_the_variable() -> None:
    proc = run_python("import greensched", env={"GREENSCHED_BLOCKING_THRESHOLD_MS": "fast"})
    assert proc.returncode != 0
    assert "GREENSCHED_BLOCKING_THRESHOLD_MS='fast' is not understood" in proc.stderr
    assert "milliseconds" in proc.stderr


def test_runner_flags_for_the_dump_signal_and_the_detector(tmp_path: Any) -> None:
    script = tmp_path / "prog.py"
    script.write_text(
        "import os, signal, time, threading\n"
        "import greensched\n"
        "def spinner():\n"
        "    with greensched.no_preempt():\n"
        "        end = time.monotonic() + 0.5\n"
        "        while time.monotonic() < end:\n"
        "            pass\n"
        "t = threading.Thread(target=spinner, name='cli-hog')\n"  # green: the runner patched threading
        "t.start()\n"
        "t.join()\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"
        "time.sleep(0.01)\n"
        "print('done', flush=True)\n"
    )
    proc = run_python(
        f"import sys; sys.argv = ['greensched', '--dump-signal', 'SIGUSR1', "
        f"'--blocking-threshold', '50', {str(script)!r}]\n"
        f"from greensched.__main__ import main; main()\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"
    assert "green thread 'cli-hog'" in proc.stderr and "has held the CPU" in proc.stderr
    assert "green thread 'MainThread' (ident " in proc.stderr and "RUNNING)" in proc.stderr  # the dump
    assert "prog.py" in proc.stderr


def test_runner_rejects_bad_flag_values() -> None:
    for flags, words in ((["--dump-signal", "SIGALRM"], "preemption timer's signal"),
                         (["--blocking-threshold", "soon"], "--blocking-threshold='soon' is not understood")):
        proc = run_python(
            f"import sys; sys.argv = ['greensched', *{flags!r}, 'x.py']\n"
            f"from greensched.__main__ import main; main()\n"
        )
        assert proc.returncode == 2, proc.stderr
        assert words in proc.stderr


# -- reports that include stacks ----------------------------------------------------------------


def wait_forever_on(lock: Lock) -> None:
    lock.acquire()


def test_deadlock_error_shows_each_threads_stack() -> None:
    lock = Lock()
    lock.acquire()
    stuck = GreenThread(target=wait_forever_on, args=(lock,), name="stuck")
    stuck.start()
    never = Event()
    with pytest.raises(greensched.DeadlockError) as info:
        never.wait()
    message = str(info.value)
    assert "'stuck' waits on Lock.acquire() at" in message
    assert "in wait_forever_on" in message and "lock.acquire()" in message
    assert "in test_deadlock_error_shows_each_threads_stack" in message and "never.wait()" in message
    # user frames only
    assert "greensched/" not in message.split("(is a lock")[0].replace("greensched/_core", "")
    lock.release()
    stuck.join()


def test_uncaught_exception_report_names_the_thread_and_ident() -> None:
    proc = run_python(
        """
        import greensched
        def failing():
            raise ValueError("boom")
        t = greensched.GreenThread(target=failing, name="failing-worker")
        t.start()
        t.join()
        print(t.ident)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert f"Exception in green thread failing-worker (ident {proc.stdout.strip()}):" in proc.stderr
    assert proc.stderr.count("Traceback") == 1
    assert "ValueError: boom" in proc.stderr


def test_everything_here_is_public() -> None:
    for name in ("stats", "dump_stacks", "format_stacks", "set_dump_signal",
                 "start_blocking_detector", "stop_blocking_detector"):
        assert name in greensched.__all__ and callable(getattr(greensched, name))
    assert sys.modules["greensched.monitor"].stats is greensched.stats
