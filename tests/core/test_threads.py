"""Green threads: spawn, join, result, kill, exceptions, the main thread, run()."""

from __future__ import annotations

import signal
import time

import pytest

import greensched
from greensched import Event, GreenThread, GreenThreadExit, Lock, Queue, spawn
from greensched.testing import MockClock
from tests.util import run_python


def test_spawn_runs_target_with_args_and_result_returns_its_value() -> None:
    """spawn(fn, *args, **kwargs) runs fn(*args, **kwargs); result() returns its value."""
    thread = spawn(lambda a, b, c=0: a + b + c, 1, 2, c=3)
    assert isinstance(thread, GreenThread)
    assert thread.result() == 6
    assert thread.done() and not thread.is_alive()


def test_spawn_non_callable_is_a_type_error_at_spawn() -> None:
    """The mistake spawn(f(x)) is caught at spawn time, with a hint."""
    with pytest.raises(TypeError, match="must be callable"):
        spawn(42)  # type: ignore[arg-type]


def test_join_self_and_join_unstarted_are_runtime_errors() -> None:
    """Same errors as threading.Thread.join."""
    with pytest.raises(RuntimeError, match="cannot join current thread"):
        greensched.current_thread().join()
    with pytest.raises(RuntimeError, match="before it is started"):
        GreenThread(target=lambda: None).join()

    def join_me() -> str:
        try:
            greensched.current_thread().join()
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    assert spawn(join_me).result() == "cannot join current thread"


def test_start_twice_is_an_error() -> None:
    thread = GreenThread(target=lambda: None)
    thread.start()
    with pytest.raises(RuntimeError, match="only be started once"):
        thread.start()
    thread.join()


def test_join_timeout_returns_none_while_still_running() -> None:
    """join(timeout) returns None either way; done() tells; negative means no wait."""
    gate = Event()
    thread = spawn(gate.wait)
    start = time.monotonic()
    assert thread.join(0.05) is None
    assert not thread.done()
    assert time.monotonic() - start >= 0.04
    assert thread.join(-1) is None and not thread.done()
    with pytest.raises(TimeoutError, match="did not finish"):
        thread.result(timeout=0.01)
    gate.set()
    thread.join()
    assert thread.done()


def test_result_reraises_and_exception_is_reported_once(capsys: pytest.CaptureFixture[str]) -> None:
    """An uncaught exception is printed once with its traceback and re-raised by result()."""
    error = ValueError("boom")

    def fail() -> None:
        raise error

    thread = spawn(fail, )
    thread.name = "failing-worker"
    with pytest.raises(ValueError) as info:
        thread.result()
    assert info.value is error
    assert thread.exception() is error
    with pytest.raises(ValueError):
        thread.result()  # asking again re-raises again, but nothing is printed again
    err = capsys.readouterr().err
    assert err.count("Exception in green thread failing-worker") == 1
    assert "ValueError: boom" in err and "Traceback" in err


def test_a_failing_thread_does_not_stop_the_others(capsys: pytest.CaptureFixture[str]) -> None:
    """The hub survives an exception in a thread; the rest run to completion."""
    results = Queue()

    def worker(n: int) -> None:
        if n == 2:
            raise RuntimeError("worker 2 fails")
        greensched.sleep(0.001)
        results.put(n)

    threads = [spawn(worker, n) for n in range(5)]
    for t in threads:
        t.join()
    got = sorted(results.get() for _ in range(4))
    assert got == [0, 1, 3, 4]
    assert "worker 2 fails" in capsys.readouterr().err


def test_sleep_zero_yields_in_fifo_order() -> None:
    """sleep(0) goes to the back of the run queue: two yielders alternate."""
    trace: list[str] = []

    def worker(tag: str) -> None:
        for _ in range(3):
            trace.append(tag)
            greensched.sleep(0)

    a, b = spawn(worker, "a"), spawn(worker, "b")
    a.join()
    b.join()
    assert trace == ["a", "b"] * 3


def test_sleep_negative_is_the_stdlib_error() -> None:
    with pytest.raises(ValueError, match="sleep length must be non-negative"):
        greensched.sleep(-1)


def test_sleepers_wake_in_deadline_order(autojump: MockClock) -> None:
    """On the mock clock: the order is the deadlines', whatever the real scheduling delay."""
    order: list[float] = []
    start = autojump.now()
    threads = [spawn(lambda d=d: (greensched.sleep(d), order.append(d))) for d in (0.03, 0.01, 0.02)]
    greensched.run()
    assert order == [0.01, 0.02, 0.03]
    assert autojump.now() - start == pytest.approx(0.03)
    assert all(t.done() for t in threads)


def test_main_thread_is_a_green_thread_and_blocking_in_it_runs_the_others() -> None:
    """The test body runs in the main green thread: when it waits, others run."""
    me = greensched.current_thread()
    assert me.name == "MainThread" and me.is_alive()
    ran = Event()
    spawn(ran.set)
    assert ran.wait(5)


def test_kill_raises_inside_the_thread_and_runs_finally() -> None:
    """kill() raises GreenThreadExit where the thread is parked; finally blocks run."""
    entered, cleaned = Event(), []

    def worker() -> None:
        try:
            entered.set()
            greensched.sleep(60)
        finally:
            cleaned.append(True)

    thread = spawn(worker)
    entered.wait()
    thread.kill()
    assert thread.done() and cleaned == [True]
    with pytest.raises(RuntimeError, match="was killed"):
        thread.result()
    assert thread.exception() is None


def test_kill_a_thread_that_never_ran_ends_it_without_running_it() -> None:
    ran = []
    thread = spawn(ran.append, 1)
    thread.kill()
    assert thread.done() and ran == []


def test_kill_self_raises_green_thread_exit() -> None:
    def suicidal() -> str:
        try:
            greensched.current_thread().kill()
        except GreenThreadExit:
            return "raised"
        return "not raised"

    assert spawn(suicidal).result() == "raised"


def test_kill_a_thread_waiting_on_a_lock_removes_it_from_the_wait() -> None:
    """After killing a lock waiter, the lock goes to the next waiter, not the dead one."""
    lock = Lock()
    lock.acquire()
    got: list[str] = []

    def waiter(tag: str) -> None:
        with lock:
            got.append(tag)

    first = spawn(waiter, "first")
    second = spawn(waiter, "second")
    greensched.sleep(0)  # both are parked on the lock now
    first.kill()
    lock.release()
    second.join()
    assert got == ["second"]
    assert not lock.locked()


def test_run_returns_once_every_thread_finished() -> None:
    done: list[int] = []
    for n in range(20):
        spawn(lambda n=n: (greensched.sleep(0.001 * (n % 3)), done.append(n)))
    greensched.run()
    assert sorted(done) == list(range(20))


def test_ten_thousand_parked_threads() -> None:
    """10,000 threads park on one event and all finish when it is set."""
    gate = Event()
    count = [0]

    def worker() -> None:
        gate.wait()
        count[0] += 1

    threads = [spawn(worker) for _ in range(10_000)]
    for _ in range(100):  # let them all park (one may be preempted on the way, e.g. by a GC pass)
        if greensched.stats()["parked"] >= 10_000:
            break
        greensched.sleep(0)
    assert greensched.stats()["parked"] >= 10_000
    gate.set()
    greensched.run()
    assert count[0] == 10_000 and all(t.done() for t in threads)


def test_thread_names_idents_and_daemon() -> None:
    t1 = GreenThread(target=lambda: None, name="alpha", daemon=True)
    t2 = GreenThread(target=lambda: None)
    assert t1.name == "alpha" and t1.daemon and not t2.daemon
    assert t1.ident != t2.ident
    assert t2.name.startswith("GreenThread-")
    t1.start()
    with pytest.raises(RuntimeError):
        t1.daemon = False
    t2.start()
    t1.join()
    t2.join()
    assert "alpha" in repr(t1) and "DONE" in repr(t1)


def test_subclass_overriding_run() -> None:
    class Doubler(GreenThread):
        def __init__(self, x: int) -> None:
            super().__init__()
            self.x = x

        def run(self) -> int:
            greensched.sleep(0)
            return self.x * 2

    assert Doubler(21).start().result() == 42


def test_deadlock_is_reported_in_main_naming_the_parked_threads() -> None:
    """Every thread parked, nothing can wake one: DeadlockError in main, not a hang."""
    lock = Lock()
    lock.acquire()
    never = Event()
    stuck = GreenThread(target=lock.acquire, name="stuck-on-lock")
    stuck.start()
    with pytest.raises(greensched.DeadlockError) as info:
        never.wait()
    message = str(info.value)
    assert "stuck-on-lock" in message and "Lock.acquire()" in message
    assert "MainThread" in message and "Event.wait()" in message
    assert "test_threads.py" in message  # where the threads are parked
    lock.release()  # hands the lock to the stuck thread, which then finishes
    stuck.join()


def test_program_end_waits_for_non_daemon_threads() -> None:
    """Like threading: the interpreter waits for non-daemon green threads at exit."""
    proc = run_python(
        """
        import greensched
        def late():
            greensched.sleep(0.2)
            print("non-daemon finished", flush=True)
        def forever():
            greensched.sleep(3600)
        greensched.spawn(late)
        greensched.GreenThread(target=forever, daemon=True).start()
        print("main returns", flush=True)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["main returns", "non-daemon finished"]


def test_keyboard_interrupt_reaches_main_while_everyone_is_parked() -> None:
    """SIGINT while all threads are parked: KeyboardInterrupt in main, promptly."""
    proc = run_python(
        """
        import os, signal, threading, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a background launcher may ignore it
        import greensched
        for _ in range(5):
            greensched.spawn(greensched.sleep, 3600)
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        start = time.monotonic()
        try:
            greensched.Event().wait(30)
        except KeyboardInterrupt:
            print(f"KeyboardInterrupt after {time.monotonic() - start:.2f}s", flush=True)
            os._exit(0)
        print("no interrupt", flush=True)
        os._exit(1)
        """
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    elapsed = float(proc.stdout.split("after ")[1].rstrip("s\n"))
    assert elapsed < 5.0


def test_keyboard_interrupt_reaches_main_while_another_thread_computes() -> None:
    """SIGINT while a CPU-bound thread runs and main is parked: main still gets it."""
    proc = run_python(
        """
        import os, signal, threading, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a background launcher may ignore it
        import greensched
        def hog():
            while True:
                pass
        greensched.GreenThread(target=hog, daemon=True).start()
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            greensched.sleep(30)
        except KeyboardInterrupt:
            print("main got KeyboardInterrupt", flush=True)
            os._exit(0)
        os._exit(1)
        """
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "main got KeyboardInterrupt" in proc.stdout


def test_interrupt_main_from_a_thread_main_joins_is_raised_in_the_join() -> None:
    """`_thread.interrupt_main()` in a thread main joins: KeyboardInterrupt from the join, once.

    The thread's end wakes main, which used to run on (handed off to in the same pass)
    and take the interrupt later, in whatever it parked on next.
    """
    proc = run_python(
        """
        import signal
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a background launcher may ignore it
        import greensched
        greensched.patch_all()
        import _thread, threading, time
        t = threading.Thread(target=_thread.interrupt_main)
        try:
            t.start()
            t.join()
            print("join returned", flush=True)
        except KeyboardInterrupt:
            print("KeyboardInterrupt in the join", flush=True)
        for _ in range(3):
            try:
                time.sleep(0.01)
            except KeyboardInterrupt:
                print("a second KeyboardInterrupt", flush=True)
        print("done", flush=True)
        """
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == ["KeyboardInterrupt in the join", "done"]


def test_forked_child_can_spawn_and_sleep() -> None:
    """After os.fork() the child's hub works: it spawns, sleeps and preempts."""
    proc = run_python(
        """
        import os, time, greensched
        greensched.spawn(greensched.sleep, 0.05).join()
        pid = os.fork()
        if pid == 0:
            counts = [0, 0]
            def hog(i):
                end = time.monotonic() + 0.5
                while time.monotonic() < end:
                    counts[i] += 1
            a, b = greensched.spawn(hog, 0), greensched.spawn(hog, 1)
            t = greensched.spawn(greensched.sleep, 0.05)
            a.join(); b.join(); t.join()
            share = min(counts) / sum(counts)
            os._exit(0 if share > 0.2 and greensched.stats()["preemptions"] > 0 else 3)
        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status), flush=True)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "child exit 0" in proc.stdout, proc.stdout + proc.stderr


def test_fork_from_a_thread_with_others_ready_in_the_same_pass() -> None:
    """The child's hub carries on the parent's pass with an emptied run queue.

    Once, it popped from the emptied queue and the child's forking thread got an
    IndexError at its next wait (seen in CPython's test_ForkingTCPServer).
    """
    proc = run_python(
        """
        import os, greensched
        result = []
        def forker():
            pid = os.fork()
            if pid == 0:
                try:
                    greensched.sleep(0.01)   # the hub resumes the pass it was in
                    code = 0
                except BaseException as exc:
                    os.write(2, repr(exc).encode())
                    code = 3
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            result.append(os.waitstatus_to_exitcode(status))
        threads = [greensched.spawn(forker)] + [greensched.spawn(greensched.sleep, 0) for _ in range(5)]
        for t in threads:
            t.join()
        print("child exit", result[0], flush=True)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "child exit 0" in proc.stdout, proc.stdout + proc.stderr


def test_no_signal_is_left_armed_after_the_program_ends() -> None:
    """The interval timer is stopped at exit: no 'Alarm clock' death after main returns."""
    proc = run_python(
        """
        import time, greensched
        def hog():
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                pass
        greensched.spawn(hog)
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            pass
        """
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert -proc.returncode != signal.SIGALRM


def test_forked_child_does_not_run_the_parents_other_threads() -> None:
    """Only the forking thread lives on in the child; the others never run a line there."""
    proc = run_python(
        """
        import os, greensched
        gate = greensched.Event()
        def parent_worker():
            try:
                gate.wait()
                print(f"worker ran in {os.getpid()}", flush=True)
            finally:
                print(f"worker finally in {os.getpid()}", flush=True)
        w = greensched.spawn(parent_worker)
        greensched.sleep(0)
        pid = os.fork()
        if pid == 0:
            assert w.done(), "the parent's thread must be gone in the child"
            gate.set()
            greensched.spawn(greensched.sleep, 0.01).join()
            r, wr = os.pipe()
            def reader():
                greensched.wait_readable(r, 5)
                return os.read(r, 10)
            t = greensched.spawn(reader)
            os.write(wr, b"child-io")
            assert t.result() == b"child-io"
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        gate.set()
        w.join()
        print("child exit", os.waitstatus_to_exitcode(status), flush=True)
        """
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "child exit 0" in lines, proc.stdout + proc.stderr
    parent_pid_lines = [line for line in lines if line.startswith("worker")]
    assert len(parent_pid_lines) == 2  # ran and finally, once each: in the parent only
    assert len({line.split()[-1] for line in parent_pid_lines}) == 1


def test_a_hand_off_runs_next_ahead_of_the_rest_of_the_pass() -> None:
    """The thread woken by a hand-off runs as soon as its waker parks, before a
    bystander that was ready earlier (Go's runnext); so does the reply."""
    order: list[str] = []
    ping, pong = Queue(), Queue()

    def echo() -> None:
        pong.put(ping.get())
        order.append("echo handed back")

    echoer = spawn(echo)
    greensched.sleep(0)  # the echo thread parks in ping.get()
    bystander = spawn(order.append, "bystander ran")  # ready now, waiting for its turn
    ping.put("x")  # a hand-off
    assert pong.get() == "x"
    order.append("main got it back")
    bystander.join()
    echoer.join()
    assert order == ["echo handed back", "main got it back", "bystander ran"], order


def test_a_ping_pong_pair_cannot_starve_a_ready_thread_even_without_preemption() -> None:
    """Hand-offs chain for one slice at most, then the pair takes turns like anyone."""
    before = greensched.get_preemption()
    greensched.set_preemption(False)
    try:
        ping, pong, stop = Queue(), Queue(), Event()

        def echo() -> None:
            while not stop.is_set():
                pong.put(ping.get())

        def pinger() -> None:
            while not stop.is_set():
                ping.put("x")
                pong.get()

        pair = [spawn(echo), spawn(pinger)]
        spawn(stop.set).join()  # it must get a turn while the pair ping-pongs
        ping.put("last")  # whichever of the pair is parked in get() wakes and sees stop
        pong.put("last")
        for thread in pair:
            thread.join()
    finally:
        greensched.set_preemption(*before)
