"""Patched threading, _thread and queue: plain threaded code runs on green threads.

Each test runs a snippet in a fresh interpreter that patches first, as a user would.
"""

from __future__ import annotations

import sys

import pytest

from tests.util import run_python

PATCH = "import greensched\ngreensched.patch_all()\n"


def check(code: str) -> list[str]:
    proc = run_python(PATCH + code, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


def test_threads_are_green_and_really_concurrent() -> None:
    """100 threading.Threads sleeping 0.2 s finish together, all on the main OS thread."""
    out = check(
        """
import threading, time
seen = []
def work(i):
    time.sleep(0.2)
    seen.append((i, threading.current_thread().name, threading.get_ident(), threading.get_native_id()))
start = time.monotonic()
threads = [threading.Thread(target=work, args=(i,), name=f"w{i}") for i in range(100)]
for t in threads: t.start()
for t in threads: t.join()
print(round(time.monotonic() - start, 2) < 1.0, len(seen), len({s[2] for s in seen}),
      {s[3] for s in seen} == {threading.get_native_id()},
      sorted(s[1] for s in seen)[:2], all(not t.is_alive() for t in threads))
print(threading.current_thread() is threading.main_thread(), threading.active_count())
"""
    )
    assert out == ["True 100 100 True ['w0', 'w1'] True", "True 1"]


def test_thread_objects_keep_their_api() -> None:
    out = check(
        """
import threading, time
gate = threading.Event()
t = threading.Thread(target=gate.wait, name="waiter", daemon=True)
print(t.is_alive(), t.ident)
t.start()
print(t.is_alive(), t.daemon, t.name, t.ident == t.ident and t.ident is not None,
      t in threading.enumerate())
t.join(0.05)
print(t.is_alive())
gate.set(); t.join()
print(t.is_alive(), t not in threading.enumerate())
try:
    threading.current_thread().join()
except RuntimeError as exc:
    print(exc)
"""
    )
    assert out == ["False None", "True True waiter True True", "True", "False True",
                   "cannot join current thread"]


def test_excepthook_reports_thread_errors(tmp_path: object) -> None:
    out = check(
        """
import threading
seen = []
threading.excepthook = lambda args: seen.append(
    (args.exc_type.__name__, str(args.exc_value), args.thread.name))
t = threading.Thread(target=lambda: 1 / 0, name="divider")
t.start(); t.join()
print(seen)
"""
    )
    assert out == ["[('ZeroDivisionError', 'division by zero', 'divider')]"]


def test_primitives_barrier_timer_and_local() -> None:
    out = check(
        """
import threading, time
barrier = threading.Barrier(5)
got = []
def party():
    got.append(barrier.wait())
ts = [threading.Thread(target=party) for _ in range(5)]
for t in ts: t.start()
for t in ts: t.join()
print(sorted(got))
fired = threading.Event()
timer = threading.Timer(0.05, fired.set); timer.start()
print(fired.wait(5))
data = threading.local()
values = []
def keep(i):
    data.value = i
    time.sleep(0.01)
    values.append(data.value == i)
ts = [threading.Thread(target=keep, args=(i,)) for i in range(20)]
for t in ts: t.start()
for t in ts: t.join()
print(all(values), len(values))
lock, rlock, cond, sem = threading.Lock(), threading.RLock(), threading.Condition(), threading.Semaphore(2)
print(type(lock).__module__, type(rlock).__module__)
with cond:
    print(cond.wait(0.01))
"""
    )
    assert out == ["[0, 1, 2, 3, 4]", "True", "True 20", "greensched.sync greensched.sync", "False"]


def test_thread_pool_executor_runs_green() -> None:
    """ThreadPoolExecutor.map: 20 tasks run at once on 20 green workers, one OS thread."""
    out = check(
        """
import threading, time
from concurrent.futures import ThreadPoolExecutor
all_in = threading.Barrier(20, timeout=60)   # passes only if all 20 run concurrently
def task(x):
    all_in.wait()
    time.sleep(0.05)
    return x * x, threading.get_native_id()
with ThreadPoolExecutor(max_workers=20) as pool:
    results = list(pool.map(task, range(20)))
print([r[0] for r in results] == [x * x for x in range(20)],
      {r[1] for r in results} == {threading.get_native_id()})
"""
    )
    assert out == ["True True"], out


def test_queue_is_green_and_logging_works() -> None:
    out = check(
        """
import io, logging, queue, threading
q = queue.Queue()
print(type(q).__module__, queue.SimpleQueue.__module__)
stream = io.StringIO()
log = logging.getLogger("t"); log.addHandler(logging.StreamHandler(stream)); log.setLevel(logging.INFO)
def producer(n):
    for i in range(50):
        q.put((n, i))
        log.info("put %d %d", n, i)
ts = [threading.Thread(target=producer, args=(n,)) for n in range(4)]
for t in ts: t.start()
for t in ts: t.join()
items = [q.get_nowait() for _ in range(200)]
print(len(set(items)), q.empty(), len(stream.getvalue().splitlines()))
"""
    )
    assert out == ["greensched.queue greensched.queue", "200 True 200"]


def test_interpreter_waits_for_non_daemon_threads_at_exit() -> None:
    out = check(
        """
import threading, time
def late():
    time.sleep(0.2)
    print("late thread done", flush=True)
threading.Thread(target=late).start()
threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
print("main done", flush=True)
"""
    )
    assert out == ["main done", "late thread done"]


def test_the_thread_module_starts_green_threads_but_keeps_os_locks_and_idents() -> None:
    """_thread's locks and idents stay OS-level (import locks live there); threading's
    copies are green; and threads started through _thread directly are green."""
    out = check(
        """
import _thread, threading, greensched
print(_thread.allocate_lock().__class__.__module__, type(threading.Lock()).__module__,
      _thread.get_ident() == threading.get_ident())
done, seen = threading.Event(), []
def body(tag):
    seen.append((tag, threading.get_native_id()))
    done.set()                      # a green Event, set from the new thread
_thread.start_new_thread(body, ("started",))
print(done.wait(30), seen == [("started", threading.get_native_id())],
      greensched.original("_thread", "start_new_thread") is not _thread.start_new_thread)
keywords = threading.Event()
_thread.start_new_thread(lambda tag: (seen.append(tag), keywords.set()), (), {"tag": "kw"})
print(keywords.wait(30), seen[-1])
per_thread = _thread._local()            # one value per green thread, not per OS thread
per_thread.value = "main"
other = greensched.spawn(lambda: getattr(per_thread, "value", "unset"))
print(other.result(), per_thread.value)
"""
    )
    assert out == ["_thread greensched.sync True", "True True True", "True kw", "unset main"], out


def test_threading_threads_are_preempted() -> None:
    """A CPU hog and a thread stuck in a C queue's get() started with threading.Thread
    are switched away from: the others keep running (once, no patched thread was)."""
    out = check(
        """
import _queue, threading, time, greensched
stop = threading.Event()
c_queue = _queue.SimpleQueue()        # C code nobody made green: get() blocks the OS thread
got = []
def hog():
    while not stop.is_set():
        pass
def stuck_consumer():
    for _ in range(20):
        got.append(c_queue.get())
def producer():
    for i in range(20):
        c_queue.put(i)
        time.sleep(0.001)
threads = [threading.Thread(target=f) for f in (hog, stuck_consumer, producer)]
for t in threads: t.start()
threads[1].join(60); threads[2].join(60)
stop.set(); threads[0].join(60)
print(got == list(range(20)), greensched.stats()["preemptions"] > 0)
"""
    )
    assert out == ["True True"], out


def test_threading_event_is_the_green_event_and_keeps_its_api() -> None:
    """threading.Event is greensched.Event once patched (every Thread makes one)."""
    out = check(
        """
import threading, greensched
ev = threading.Event()
t = threading.Thread(target=ev.set)
print(threading.Event is greensched.Event, ev.is_set(), ev.wait(0.01))
t.start()
print(ev.wait(30), ev.is_set(), t._started.is_set(), greensched.is_patched("threading", "Event"))
ev.clear()
print(ev.is_set(), ev.wait(0))
"""
    )
    assert out == ["True False False", "True True True True", "False False"], out


def test_current_thread_in_spawned_threads_leaves_nothing_behind() -> None:
    """current_thread() in a greensched.spawn thread (every log record asks) makes a
    _DummyThread; it is forgotten when the green thread ends, with no noise at exit."""
    out = check(
        """
import gc, logging, threading, greensched
logging.basicConfig(level=logging.INFO, format="%(threadName)s %(message)s")
before = len(threading._active)
names = []
def work(i):
    names.append(threading.current_thread().name)
    logging.getLogger("t").debug("quiet %d", i)
threads = [greensched.spawn(work, i) for i in range(300)]
for t in threads:
    t.join()
del threads, t
gc.collect()
print(len(names), len(set(names)) == 300, len(threading._active) - before)
"""
    )
    assert out == ["300 True 0"], out


def test_daemon_threads_that_asked_current_thread_exit_quietly() -> None:
    """Their `_DummyThread` tidiers run after module teardown at exit: no 'Exception ignored'."""
    proc = run_python("""
        import greensched
        greensched.patch_all()
        import threading

        def work():
            threading.current_thread()     # registers a _DummyThread, tidied when the thread goes
            greensched.sleep(10)

        threads = [greensched.GreenThread(work, daemon=True).start() for _ in range(3)]
        greensched.sleep(0.05)
        assert all(t.state == "PARKED" for t in threads)
        # Each keeps its own _DummyThread while it lives (3.13's stdlib remover, shared
        # by all green threads through an OS-thread local, used to drop the others').
        assert all(threading._active.get(t.ident) is not None for t in threads)
        print("exiting")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "exiting"
    assert "Exception ignored" not in proc.stderr, proc.stderr


def test_an_exception_escaping_a_thread_module_thread_is_reported_as_thread_reports_it() -> None:
    """``_thread.start_new_thread``'s unraisable report: the function as the hook's object
    on 3.11 and 3.12; on 3.13 named in the message, with no object (as CPython does)."""
    out = check(
        """
import _thread, sys, threading
seen = []
sys.unraisablehook = seen.append
done = threading.Event()
def task():
    try:
        raise ValueError("task failed")
    finally:
        done.set()
_thread.start_new_thread(task, ())
done.wait(5)
for _ in range(1000):  # the report follows task's finally: let the thread get there
    if seen:
        break
    threading.Event().wait(0)
report = seen[0]
print(str(report.exc_value), report.exc_traceback is not None)
if sys.version_info >= (3, 13):
    print(report.object is None, report.err_msg == f"Exception ignored in thread started by {task!r}")
else:
    print(report.object is task, report.err_msg == "Exception ignored in thread started by")
"""
    )
    assert out == ["task failed True", "True True"]


def test_rlock_takes_and_ignores_arguments_as_the_c_one_does() -> None:
    """The green class behind `threading._CRLock` and `_thread.RLock` accepts (and
    ignores) arguments, as the C RLock does on every version."""
    out = check(
        """
import _thread, threading, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # 3.13's threading.RLock warns first
for lock in (_thread.RLock(1, a=2), threading.RLock(1), threading._CRLock(a=1)):
    with lock:
        print(type(lock).__module__, lock._is_owned())
"""
    )
    assert out == ["greensched.sync True"] * 3


def test_thread_handles_made_by_the_thread_module_are_green_on_3_13() -> None:
    """3.13+: ``_thread._ThreadHandle()`` is the green handle, so a program may make one and
    pass it to ``start_joinable_thread``; a second start with it is refused, as CPython does.
    (3.11 and 3.12 have no thread handles: the snippet checks there is nothing to patch.)"""
    out = check(
        """
import _thread, sys, threading
if sys.version_info < (3, 13):
    print(hasattr(_thread, "_ThreadHandle"))  # patch_all() adds none
else:
    gate = threading.Event()
    handle = _thread._ThreadHandle()
    _thread.start_joinable_thread(gate.wait, handle=handle)
    try:
        _thread.start_joinable_thread(gate.wait, handle=handle)
    except RuntimeError as exc:
        message = str(exc)
    gate.set()
    handle.join()
    print(handle.is_done() and type(handle).__module__.startswith("greensched"), message)
"""
    )
    assert out == (["True thread already started"] if sys.version_info >= (3, 13) else ["False"])


@pytest.mark.skipif(sys.version_info < (3, 13), reason="thread handles are new in 3.13")
def test_an_unstarted_thread_handle_refuses_join_and_set_done_as_the_c_one_does() -> None:
    out = check(
        """
import _thread
handle = _thread._ThreadHandle()
for call in (handle.join, handle._set_done):
    try:
        call()
    except RuntimeError as exc:
        print(call.__name__, exc)
"""
    )
    assert out == ["join thread not started", "_set_done thread not started"]


def test_threading_lock_cannot_be_subclassed_patched_as_unpatched() -> None:
    """No CPython lets you subclass threading.Lock (3.13's test_lock_no_subclass pins it)."""
    out = check(
        """
import threading
try:
    class MyLock(threading.Lock):
        pass
except TypeError as exc:
    print("TypeError", "cannot be subclassed" in str(exc))
"""
    )
    assert out == ["TypeError True"]
