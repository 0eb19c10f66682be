"""asyncio and green threads in one program: loops per green thread, and both bridges.

Every test runs in a fresh interpreter (`tests.util.run_python`): ``patch_all()`` and
``import greensched.asyncio`` change asyncio for the whole process. The snippets
print ``ok`` at the end; anything else (an assertion, a hang killed by the timeout)
fails the test with the child's output.
"""

from __future__ import annotations

import textwrap

from tests.util import run_python

#: Code shared by the snippets: a green echo server on 127.0.0.1 (a thread per connection).
ECHO = """
import socket, threading
def _echo_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(512)  # a burst of connects must not overflow the backlog (SYN retries: 1 s)
    def handle(conn):
        with conn:
            while (data := conn.recv(4096)):
                conn.sendall(data)
    def serve():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()
    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1]
"""


def check(code: str, timeout: float = 90.0) -> None:
    """Run the snippet (``#ECHO`` on a line of its own defines `_echo_server`); expect ``ok``."""
    proc = run_python(textwrap.dedent(code).replace("#ECHO\n", textwrap.dedent(ECHO)), timeout=timeout)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")


def test_fifty_green_threads_each_run_asyncio_run_at_once_under_patch_all() -> None:
    """The issue's case: 1 of 50 worked before (one running loop per OS thread)."""
    check("""
        import greensched
        greensched.patch_all()
        import asyncio, threading, time
        #ECHO
        port = _echo_server()

        async def main(i):
            await asyncio.sleep(0.3)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"ping %d" % i)
            await writer.drain()
            data = await reader.readexactly(len(b"ping %d" % i))
            writer.close()
            await writer.wait_closed()
            return data

        ticks, stop = [], threading.Event()
        def ticker():
            while not stop.is_set():
                time.sleep(0.01)
                ticks.append(time.monotonic())
        threading.Thread(target=ticker).start()
        results = {}
        def one(i):
            results[i] = asyncio.run(main(i))
        start = time.monotonic()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
        for t in threads: t.start()
        for t in threads: t.join()
        elapsed = time.monotonic() - start
        stop.set()
        assert results == {i: b"ping %d" % i for i in range(50)}, results
        # Concurrent, not one after another (50 x 0.3 s = 15 s); bench/ has the real figure.
        assert elapsed < 7.5, elapsed
        during = [t for t in ticks if start < t < start + elapsed]
        assert len(during) >= 5, len(during)  # the ticker kept running beside the loops
        print("ok")
    """)


def test_running_loop_policy_loop_current_task_are_per_green_thread() -> None:
    check("""
        import greensched
        greensched.patch_all()
        import asyncio, threading

        seen = {}
        both_running = threading.Barrier(2)
        async def body(name):
            loop = asyncio.get_running_loop()
            assert asyncio.get_event_loop() is loop
            assert asyncio.events._get_running_loop() is loop
            task = asyncio.current_task()
            assert task is not None and task.get_loop() is loop
            assert asyncio.all_tasks() == {task}
            # C code that finds no loop asks the policy: it must get this thread's loop
            fut = asyncio.Future()
            assert fut.get_loop() is loop
            fut.set_result(1)
            async with asyncio.timeout(5):
                await asyncio.to_thread(both_running.wait)  # both loops run at the same time
            seen[name] = loop
            return name

        def with_run(): assert asyncio.run(body("run")) == "run"
        def with_runner():
            with asyncio.Runner() as runner:
                assert runner.run(body("runner")) == "runner"
        threads = [threading.Thread(target=with_run), threading.Thread(target=with_runner)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert set(seen) == {"run", "runner"} and seen["run"] is not seen["runner"]

        # set_event_loop/get_event_loop and run_until_complete, per green thread
        loops = {}
        ready = threading.Barrier(2)
        def own_loop(name):
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            ready.wait()
            assert asyncio.get_event_loop() is loop
            loops[name] = loop.run_until_complete(asyncio.sleep(0.05, result=loop))
            loop.close()
        threads = [threading.Thread(target=own_loop, args=(n,)) for n in "ab"]
        for t in threads: t.start()
        for t in threads: t.join()
        assert loops["a"] is not loops["b"]
        try:
            asyncio.get_running_loop()
        except RuntimeError as exc:
            assert "no running event loop" in str(exc)
        else:
            raise AssertionError("a running loop outside any loop")
        print("ok")
    """)


def test_spawned_threads_without_patch_all_run_loops_after_importing_the_bridge() -> None:
    """No patch_all: importing greensched.asyncio is the one call needed."""
    check("""
        import asyncio, sys, time
        from asyncio import get_running_loop as copied   # a copy made before the import
        c_version = [copied]  # in a list: not a module-level name, so left alone
        import greensched, greensched.asyncio
        assert copied is asyncio.get_running_loop is asyncio.events.get_running_loop
        assert copied is not c_version[0]  # the module's copy was replaced in place

        async def main(i):
            await asyncio.sleep(0.3)
            assert copied() is asyncio.get_running_loop()
            return i, asyncio.get_running_loop()
        ticks = []
        def ticker():
            for _ in range(20):
                greensched.sleep(0.01)
                ticks.append(1)
        greensched.spawn(ticker)
        start = time.monotonic()
        threads = [greensched.spawn(asyncio.run, main(i)) for i in range(20)]
        results = [t.result() for t in threads]
        assert [i for i, _ in results] == list(range(20))
        assert time.monotonic() - start < 3.0  # concurrent: one after another is 6 s
        assert len(ticks) == 20  # the loops parked on the hub: the ticker ran meanwhile
        print("ok")
    """)


def test_to_green_returns_raises_sees_context_and_is_not_blocked_by_the_loop() -> None:
    check("""
        import asyncio, contextvars, time
        import greensched, greensched.asyncio as gasyncio

        request_id = contextvars.ContextVar("request_id")
        def blocking(x):
            greensched.sleep(0.05)
            return x * 2, request_id.get()
        def fails():
            greensched.sleep(0.01)
            raise KeyError("missing")

        async def main():
            request_id.set("r-1")
            assert await gasyncio.to_green(blocking, 21) == (42, "r-1")
            try:
                await gasyncio.to_green(fails)
            except KeyError as exc:
                assert exc.args == ("missing",)
            else:
                raise AssertionError("no KeyError")
            # 500 at once: they park together (0.05 s each, not 25 s in all)
            start = time.monotonic()
            results = await asyncio.gather(*(gasyncio.to_green(blocking, i) for i in range(500)))
            assert [r[0] for r in results] == [2 * i for i in range(500)]
            assert time.monotonic() - start < 5.0
            # a CPU-bound green function is preempted: the loop's own timers keep firing
            def spin(seconds):
                end = time.monotonic() + seconds
                n = 0
                while time.monotonic() < end:
                    n += 1
                return n
            ticks = 0
            async def tick():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1
            ticker = asyncio.ensure_future(tick())
            assert await gasyncio.to_green(spin, 0.5) > 0
            ticker.cancel()
            assert ticks >= 5, ticks
            return "done"
        assert asyncio.run(main()) == "done"
        print("ok")
    """)


def test_cancelling_the_awaiting_task_kills_the_green_thread_and_waits_for_it() -> None:
    check("""
        import asyncio, time
        import greensched, greensched.asyncio as gasyncio

        log = []
        def parked():
            try:
                greensched.sleep(30)
            except greensched.GreenThreadExit:
                log.append("killed while parked")
                raise
            finally:
                greensched.sleep(0.01)  # cleanup may block; the task waits for it
                log.append("finally")
        def spinning():
            try:
                while True:
                    pass
            finally:
                log.append("spin stopped")

        async def main():
            for fn in (parked, spinning):
                task = asyncio.ensure_future(gasyncio.to_green(fn))
                await asyncio.sleep(0.1)
                start = time.monotonic()
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                else:
                    raise AssertionError("not cancelled")
                assert time.monotonic() - start < 2.0
            assert log == ["killed while parked", "finally", "spin stopped"], log
            # cancelled before it began: it never runs
            ran = []
            task = asyncio.ensure_future(gasyncio.to_green(ran.append, 1))
            await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await asyncio.sleep(0.05)
            assert task.cancelled()
            # asyncio.timeout around it works the same way
            try:
                async with asyncio.timeout(0.1):
                    await gasyncio.to_green(greensched.sleep, 30)
            except TimeoutError:
                pass
            else:
                raise AssertionError("no timeout")
        asyncio.run(main())
        print("ok")
    """)


def test_to_green_refuses_a_loop_that_blocks_the_os_thread() -> None:
    check("""
        import asyncio, selectors
        early = asyncio.new_event_loop()  # made before greensched.asyncio: the stdlib's epoll
        import greensched.asyncio as gasyncio
        async def main():
            try:
                await gasyncio.to_green(print, "never")
            except RuntimeError as exc:
                assert "blocks the OS thread" in str(exc) and "loop_factory" in str(exc), exc
            else:
                raise AssertionError("accepted a blocking loop")
        early.run_until_complete(main())
        early.close()
        # a plain stdlib epoll selector handed to a loop made afterwards parks instead
        loop = asyncio.SelectorEventLoop(selectors.DefaultSelector())
        assert isinstance(loop._selector, gasyncio.HubSelector)
        assert loop.run_until_complete(gasyncio.to_green(lambda: 42)) == 42
        loop.close()
        print("ok")
    """)


def test_run_coroutine_returns_raises_times_out_and_cancels() -> None:
    check("""
        import asyncio, concurrent.futures, time
        import greensched, greensched.asyncio as gasyncio

        async def add(a, b):
            await asyncio.sleep(0.01)
            assert asyncio.current_task() is not None
            return a + b
        async def fails():
            await asyncio.sleep(0)
            raise ValueError("bad")
        log = []
        async def slow():
            try:
                await asyncio.sleep(30)
            finally:
                log.append("cancelled")

        assert gasyncio.run_coroutine(add(1, 2)) == 3
        import contextvars
        user = contextvars.ContextVar("user")
        async def whoami():
            return user.get()
        def as_user(name):
            user.set(name)
            return gasyncio.run_coroutine(whoami())
        callers = [greensched.spawn(as_user, n) for n in ("ann", "bob")]
        assert [c.result() for c in callers] == ["ann", "bob"]  # each caller's context
        try:
            gasyncio.run_coroutine(fails())
        except ValueError as exc:
            assert str(exc) == "bad"
        else:
            raise AssertionError("no ValueError")
        start = time.monotonic()
        try:
            gasyncio.run_coroutine(slow(), timeout=0.1)
        except TimeoutError as exc:
            assert "0.1" in str(exc)
        else:
            raise AssertionError("no TimeoutError")
        assert log == ["cancelled"] and time.monotonic() - start < 2.0
        # a coroutine that cancels itself
        async def self_cancel():
            asyncio.current_task().cancel()
            await asyncio.sleep(1)
        try:
            gasyncio.run_coroutine(self_cancel())
        except concurrent.futures.CancelledError:
            pass
        else:
            raise AssertionError("no CancelledError")
        try:
            gasyncio.run_coroutine(add)
        except TypeError as exc:
            assert "coroutine object" in str(exc)
        # from a coroutine on the shared loop: refused, not a deadlock
        async def nested():
            coro = add(1, 1)
            try:
                gasyncio.run_coroutine(coro)
            except RuntimeError as exc:
                return str(exc)
        assert "await the coroutine" in gasyncio.run_coroutine(nested())
        # a green thread killed while it waits: its coroutine is cancelled
        waiter = greensched.spawn(gasyncio.run_coroutine, slow())
        greensched.sleep(0.1)
        waiter.kill()
        greensched.sleep(0.1)
        assert log == ["cancelled", "cancelled"], log
        # and a greensched.Timeout around it
        try:
            with greensched.Timeout(0.1):
                gasyncio.run_coroutine(slow())
        except greensched.TimeoutExpired:
            pass
        greensched.sleep(0.1)
        assert log == ["cancelled"] * 3, log
        print("ok")
    """)


def test_thousands_of_green_threads_and_tasks_share_one_os_thread() -> None:
    check("""
        import asyncio, threading, time
        import greensched, greensched.asyncio as gasyncio

        async def job(i):
            await asyncio.sleep(0.2)
            return i
        async def background():  # tasks of the shared loop itself, beside the calls
            return await asyncio.gather(*(asyncio.sleep(0.3, result=i) for i in range(2000)))
        os_threads = threading.active_count()
        start = time.monotonic()
        bg = greensched.spawn(gasyncio.run_coroutine, background())
        callers = [greensched.spawn(gasyncio.run_coroutine, job(i)) for i in range(2000)]
        assert [c.result() for c in callers] == list(range(2000))
        assert bg.result() == list(range(2000))
        assert time.monotonic() - start < 10.0
        assert threading.active_count() == os_threads  # no OS thread was started
        # the shared loop stops when idle, so run() returns and the program can end
        greensched.run()
        assert not gasyncio.shared_loop().is_running()
        assert gasyncio.run_coroutine(job(7)) == 7  # and starts again when needed
        print("ok")
    """)


def test_a_spinning_coroutine_holds_only_its_own_loops_green_thread() -> None:
    check("""
        import asyncio, time
        import greensched, greensched.asyncio as gasyncio

        async def spin(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass  # never awaits: its loop is stuck, the other green threads are not
            return "spun"
        ticks = []
        def ticker():
            for _ in range(30):
                greensched.sleep(0.01)
                ticks.append(time.monotonic())
        t = greensched.spawn(ticker)
        spinner = greensched.spawn(gasyncio.run_coroutine, spin(0.5))
        t.join()
        assert spinner.result() == "spun"
        assert len(ticks) == 30
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        assert max(gaps) < 0.4, max(gaps)  # preempted every slice; not stalled for 0.5 s
        print("ok")
    """)


def test_asyncio_subprocesses_in_green_threads_under_patch_all() -> None:
    check("""
        import greensched
        greensched.patch_all()
        import asyncio, sys, threading, time

        async def main(i):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", f"import time; time.sleep(0.5); print({i})",
                stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            assert proc.returncode == 0
            return int(out)
        results = {}
        def one(i):
            results[i] = asyncio.run(main(i))
        start = time.monotonic()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert results == {i: i for i in range(8)}
        assert time.monotonic() - start < 3.5  # at once: one after another is over 4 s
        print("ok")
    """)


def test_patch_all_installs_the_asyncio_patch_when_asyncio_is_imported_and_not_before() -> None:
    check("""
        import sys
        import greensched
        from greensched.monkey import is_patched, original
        greensched.patch_all()
        assert "asyncio" not in sys.modules  # patch_all does not pay asyncio's import
        import asyncio
        assert is_patched("asyncio.events", "get_running_loop")
        assert asyncio.get_running_loop is asyncio.events.get_running_loop
        assert original("asyncio.events", "get_running_loop") is asyncio.events._c_get_running_loop
        assert asyncio.__spec__.loader.__class__.__name__ == "SourceFileLoader"  # no trace of the hook
        print("ok")
    """)
    check("""
        import greensched
        greensched.patch_all(asyncio=False)
        import asyncio
        from greensched.monkey import is_patched
        assert not is_patched("asyncio.events")
        assert asyncio.get_running_loop is asyncio.events._c_get_running_loop
        print("ok")
    """)


def test_the_shared_loop_goes_on_when_something_escapes_it() -> None:
    check("""
        import asyncio
        import greensched, greensched.asyncio as gasyncio

        async def slow():
            await asyncio.sleep(0.3)
            return "survived"
        first_thread = []
        async def crasher():
            first_thread.append(greensched.current_thread())
            def escape():
                raise SystemExit  # asyncio lets it out of run_forever
            asyncio.get_running_loop().call_soon(escape)
            await asyncio.sleep(0)
            return 1
        waiter = greensched.spawn(gasyncio.run_coroutine, slow())
        greensched.sleep(0.05)
        assert gasyncio.run_coroutine(crasher()) == 1
        assert waiter.result(timeout=5) == "survived"
        greensched.sleep(0.01)
        assert first_thread[0].done()  # the loop's first green thread ended; a new one took over
        assert gasyncio.run_coroutine(slow()) == "survived"
        print("ok")
    """)



def test_the_no_current_loop_warning_names_the_callers_line_not_greenscheds() -> None:
    """3.12+ warns when ``get_event_loop()`` makes a loop; our wrappers stand between the
    caller and the policy, whose walk up the stack skips only asyncio's own frames."""
    check("""
        import sys, warnings
        import greensched
        greensched.patch_all()
        import asyncio
        warnings.simplefilter("always")
        with warnings.catch_warnings(record=True) as caught:
            line = sys._getframe().f_lineno + 1
            loop = asyncio.get_event_loop()
        loop.close()
        asyncio.set_event_loop(None)
        found = [w for w in caught if "no current event loop" in str(w.message)]
        if sys.version_info >= (3, 12):
            [warning] = found
            # The snippet runs with -c: its file is "<string>".
            assert (warning.filename, warning.lineno) == ("<string>", line), (warning.filename, line)
        else:
            assert not found
        print("ok")
    """)
