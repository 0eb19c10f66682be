"""A Celery worker pool on green threads, with time limits and preemption.

    CELERY_CUSTOM_WORKER_POOL=greensched.celery:TaskPool celery -A proj worker --pool=custom -c 500

Each task runs on its own green thread in the worker process; ``-c`` caps how many
run at once. Start one worker process per core (docs/celery.md).

What happens, and why
---------------------
* **Patching comes first.** With ``--pool=custom``, Celery's ``maybe_patch_concurrency()``
  imports this module before it imports the application, so calling `patch_all()` here,
  on import, makes the application's sockets, sleeps and threads green from their
  first import. A few of Celery's own modules are imported before any pool, and some
  copy names at import (``from time import sleep`` in kombu's retry loop): those copies
  are re-pointed at the green objects. If the application itself was imported first
  (``-P greensched.celery:TaskPool`` imports the pool only after the app), we warn and
  name the fix.
* **Celery runs its green loop.** kombu asks ``detect_environment()`` whether it runs
  under green threads; we answer ``"greensched"``. Celery then does what it does for
  gevent: the consumer's blocking loop on the main green thread (its socket waits park),
  control commands on a green thread of their own, the pool's `Timer` for ETA tasks and
  heartbeats, a green poller in kombu's transports, and a green result drainer.
* **Time limits.** One green thread keeps the deadlines of the running tasks. At the
  soft limit it throws ``SoftTimeLimitExceeded`` into the task (`GreenThread.throw`):
  raised where the task waits, or, for a task that computes, where it was preempted,
  which is its next safe point; the task may catch it and clean up. At the hard limit it
  ends the task's green thread (`GreenThread.kill`) and reports ``TimeLimitExceeded``
  through Celery's ``on_timeout``, as Celery does for prefork; the worker goes on. Both
  work on CPU-bound and blocked tasks, because preemption wakes the deadline keeper
  while a task computes. (A C call that never returns to Python is not interrupted.)
* **The worker stays alive while tasks compute.** Preemption shares the CPU between a
  computing task and the consumer, the control thread and the timers, so pings,
  ``inspect``, heartbeats and other tasks' I/O go on.
* **Shutdown.** Celery's own signal handlers stay: on the first ``SIGTERM``/``Ctrl-C`` it
  stops consuming and `TaskPool.on_stop` waits for the running tasks; on a cold shutdown
  (a second ``Ctrl-C``, ``SIGQUIT``) the running tasks are ended, unacknowledged, so the
  broker redelivers ``acks_late`` tasks.
"""

from __future__ import annotations

import heapq
import itertools
import sys
import warnings
from collections.abc import Callable
from time import monotonic
from typing import Any

from . import patch_all

#: patch_all() warns that ssl was imported first: that is amqp, imported by Celery
#: before any pool. Harmless: TLS sockets are made green through ``SSLContext``.
_SSL_ONLY_WARNING = r"greensched\.patch_all\(\) was called after ssl was imported"

with warnings.catch_warnings():
    if "ssl" in sys.modules and "requests" not in sys.modules and "urllib3" not in sys.modules:
        warnings.filterwarnings("ignore", message=_SSL_ONLY_WARNING)
    patch_all()

from . import (  # noqa: E402 (after patch_all(), which must run first)
    Condition,
    Event,
    GreenThread,
    GreenThreadExit,
    current_thread,
    is_patched,
    original,
    sleep,
    spawn,
)
from ._core._introspect import thread_frame  # noqa: E402 (likewise)
from ._core._preempt import mark_root  # noqa: E402 (likewise)

try:
    from billiard.einfo import ExceptionInfo
    from billiard.exceptions import WorkerLostError
    from celery.concurrency import base as _base
    from celery.exceptions import SoftTimeLimitExceeded, WorkerShutdown, WorkerTerminate
    from celery.utils.log import get_logger
    from kombu.asynchronous import timer as _kombu_timer
    from kombu.utils import compat as _kombu_compat
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "greensched.celery needs Celery 5.3 or later; install it with `pip install celery`"
    ) from _exc

__all__ = ["TaskPool", "Timer", "ENVIRONMENT"]

logger = get_logger("celery.pool")

#: What kombu's ``detect_environment()`` answers under this pool.
ENVIRONMENT = "greensched"

#: Packages Celery imports before it imports a pool: their copies of stdlib names
#: (``from time import sleep``) are re-pointed at the green objects after patching.
_EARLY_PACKAGES = ("celery", "kombu", "amqp", "billiard", "vine", "redis", "click")
#: The stdlib modules patch_all() patches, whose names such copies come from.
_PATCHED_MODULES = ("time", "socket", "select", "selectors", "threading", "_thread", "queue",
                    "ssl", "subprocess", "os", "signal")
#: Imported only once the application is loaded: seeing one of them here means the pool
#: module came too late for the application's own imports.
_LATE_MARKERS = ("celery.app.base", "celery.bin.celery", "celery.worker")

#: While a cold shutdown waits for ended tasks to unwind (their finally blocks).
_UNWIND_GRACE_S = 1.0
#: After a shutdown signal, how long the consumer loop may go without noticing it
#: (its own cycle is 2 s) before we interrupt its broker wait; see `_unstick_shutdown`.
_UNSTICK_AFTER_S = 3.0
#: How often a task that survived the end of its hard time limit is ended again.
_REKILL_INTERVAL_S = 1.0


def _repoint_early_copies() -> list[str]:
    """Re-point module-level copies of patched stdlib objects in Celery's own packages."""
    swaps: dict[int, tuple[Any, Any]] = {}
    for modname in _PATCHED_MODULES:
        module = sys.modules.get(modname)
        if module is None:
            continue
        for name in list(vars(module)):
            if is_patched(modname, name):
                try:
                    old = original(modname, name)
                except AttributeError:
                    continue  # greensched added it
                new = getattr(module, name)
                if old is not new:
                    swaps[id(old)] = (old, new)
    fixed: list[str] = []
    for modname, module in list(sys.modules.items()):
        if module is None or modname.split(".")[0] not in _EARLY_PACKAGES:
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue  # Celery's lazy proxy modules
        for attr, value in list(namespace.items()):
            swap = swaps.get(id(value))
            if swap is not None and swap[0] is value:
                namespace[attr] = swap[1]
                fixed.append(f"{modname}.{attr}")
    return fixed


def _warn_if_late() -> None:
    late = [name for name in _LATE_MARKERS if name in sys.modules]
    if late:
        warnings.warn(
            f"greensched.celery was imported after the Celery application was loaded ({late[0]} "
            f"is already imported), so patch_all() came after the application's own imports: "
            f"names they copied from socket, time or threading stay blocking. Start the worker "
            f"with `CELERY_CUSTOM_WORKER_POOL=greensched.celery:TaskPool celery -A proj worker "
            f"--pool=custom` (Celery then imports the pool before the app), not with "
            f"-P greensched.celery:TaskPool; or import greensched.celery first thing.",
            RuntimeWarning,
            stacklevel=3,
        )


_warn_if_late()
_repoint_early_copies()
# kombu and Celery take their green paths (see the module docstring) when this is not
# "default"; it is a cache kombu fills on first use, so setting it first is the answer.
_kombu_compat._environment = ENVIRONMENT  # type: ignore[assignment]


def _register_drainer() -> None:
    """Result waits (``AsyncResult.get``) drain on one green thread, as under gevent."""
    from celery.backends import asynchronous

    class GreenDrainer(asynchronous.greenletDrainer):  # type: ignore[misc]  # celery: no type hints
        def spawn(self, func: Callable[[], Any]) -> GreenThread:
            thread = GreenThread(target=func, name="celery-result-drainer", daemon=True)
            thread.start()
            sleep(0)
            return thread

        def _event(self) -> Event:
            return Event()

    asynchronous.register_drainer(ENVIRONMENT)(GreenDrainer)


_register_drainer()


def _size_redis_pool(app: Any, limit: int) -> None:
    """Let each running task ack over a connection of its own (kombu's redis default is 10).

    The redis transport keeps a pool of client connections, 10 by default, and a task
    that finishes acks its message over one of them. Beyond 10 tasks finishing at
    once, redis-py raises "Too many connections" and the message stays unacked (it is
    delivered again later). Threads pools rarely finish that many at the same moment;
    hundreds of green threads do. An explicit ``max_connections`` transport option wins.
    """
    if app is None:
        return
    conf = app.conf
    url = str(conf.broker_write_url or conf.broker_url or "")
    if not url.startswith(("redis://", "rediss://", "redis+socket://", "sentinel://")):
        return
    options = dict(conf.broker_transport_options or {})
    if "max_connections" not in options:
        options["max_connections"] = max(10, limit + 10)
        conf.broker_transport_options = options


class Timer(_kombu_timer.Timer):  # kombu has no type hints
    """Celery's timer (ETA and countdown tasks, heartbeats) on green sleeps.

    Each entry sleeps on a green thread of its own until it is due, then runs; a
    cancelled entry's thread is ended at once so nothing lingers.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]  # kombu: no annotations
        self._pending: dict[Any, tuple[float, int, GreenThread]] = {}

    def _enter(self, eta: float, priority: int, entry: Any, push: Any = None) -> Any:
        thread = GreenThread(target=self._fire, args=(eta, entry), name="celery-timer", daemon=True)
        self._pending[entry] = (eta, priority, thread)
        thread.start()
        return entry

    def _fire(self, eta: float, entry: Any) -> None:
        try:
            delay = eta - monotonic()
            if delay > 0:
                sleep(delay)
            if self._pending.get(entry, (0, 0, None))[2] is current_thread():
                del self._pending[entry]
            if not entry.canceled:
                self.apply_entry(entry)  # type: ignore[no-untyped-call]  # kombu: no annotations
        except GreenThreadExit:
            pass

    def cancel(self, tref: Any) -> None:
        tref.cancel()
        pending = self._pending.pop(tref, None)
        if pending is not None:
            pending[2].kill(block=False)

    def clear(self) -> None:
        pending, self._pending = self._pending, {}
        for _eta, _priority, thread in pending.values():
            thread.kill(block=False)

    def stop(self) -> None:
        self.clear()

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def queue(self) -> list[Any]:
        """The pending entries, soonest first, as kombu's ``scheduled`` tuples."""
        return [_kombu_timer.scheduled(eta, priority, entry)
                for entry, (eta, priority, _t) in sorted(self._pending.items(), key=lambda kv: kv[1][:2])]


mark_root(Timer._fire)


def _flag_set(value: Any) -> bool:
    """Celery's shutdown flags hold an exit code, and 0 (EX_OK) counts: "set" is not None/False."""
    return value is not None and value is not False


def _in_consumer_drain(thread: GreenThread) -> bool:
    """Is ``thread`` parked inside the consumer loop's ``drain_events`` call?"""
    frame = thread_frame(thread)
    while frame is not None:
        if (frame.f_code.co_name == "drain_events" and frame.f_globals.get("__name__") == "kombu.connection"
                and frame.f_back is not None and frame.f_back.f_code.co_name == "_loop_cycle"):
            return True
        frame = frame.f_back
    return False


class _Job:
    """One task given to the pool: what to call, its callbacks, its thread and limits."""

    __slots__ = ("target", "args", "kwargs", "callback", "accept_callback", "error_callback",
                 "timeout_callback", "soft", "hard", "thread", "started", "ended", "finished", "pool",
                 "__weakref__")

    def __init__(self, pool: TaskPool, target: Callable[..., Any], args: Any, kwargs: Any,
                 callback: Callable[..., Any] | None, accept_callback: Callable[..., Any] | None,
                 error_callback: Callable[..., Any] | None, timeout_callback: Callable[..., Any] | None,
                 soft: float | None, hard: float | None) -> None:
        self.pool = pool
        self.target = target
        self.args = args or ()
        self.kwargs = kwargs or {}
        self.callback = callback
        self.accept_callback = accept_callback
        self.error_callback = error_callback
        self.timeout_callback = timeout_callback
        self.soft = soft or None
        self.hard = hard or None
        self.thread: GreenThread | None = None
        #: Its thread has begun `TaskPool._run_job` (before that, ending it needs no kill).
        self.started = False
        #: Ended by us (hard limit, revoke, cold shutdown): its outcome is not reported.
        self.ended = False
        self.finished = False

    def terminate(self, signal: Any = None) -> None:
        """What Celery calls on the object `apply_async` returned (``revoke(terminate=True)``)."""
        self.pool._end(self)

    def __repr__(self) -> str:
        ident = self.thread.ident if self.thread is not None else None
        return f"<greensched.celery job {getattr(self.target, '__name__', self.target)} thread={ident}>"


class _Deadlines:
    """The soft and hard deadlines of running tasks, kept by one green thread."""

    def __init__(self, pool: TaskPool) -> None:
        self._pool = pool
        self._heap: list[tuple[float, int, bool, _Job]] = []
        self._seq = itertools.count()
        self._wake = Event()
        self._next: float | None = None
        self._thread: GreenThread | None = None

    def start(self) -> None:
        self._thread = GreenThread(target=self._run, name="celery-time-limits", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.kill(block=False)
            self._thread = None

    def add(self, job: _Job, now: float) -> None:
        for limit, soft in ((job.soft, True), (job.hard, False)):
            if limit:
                deadline = now + float(limit)
                heapq.heappush(self._heap, (deadline, next(self._seq), soft, job))
                if self._next is None or deadline < self._next:
                    self._wake.set()
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._pool._running):
            # Entries of finished tasks are dropped lazily; don't let them pile up.
            self._heap = [item for item in self._heap if not item[3].finished]
            heapq.heapify(self._heap)

    def _run(self) -> None:
        heap = self._heap
        while True:
            heap = self._heap
            now = monotonic()
            while heap and heap[0][0] <= now:
                _deadline, _seq, soft, job = heapq.heappop(heap)
                if not job.finished and not job.ended:
                    self._pool._limit_reached(job, soft)
            self._next = heap[0][0] if heap else None
            self._wake.wait(None if self._next is None else max(self._next - monotonic(), 0.0))
            self._wake.clear()


class TaskPool(_base.BasePool):  # type: ignore[misc]  # Celery has no type hints here
    """Celery pool: each task on a green thread; see the module docstring."""

    Timer = Timer
    limit: int
    is_green = True
    signal_safe = False
    task_join_will_block = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit = int(self.limit or 1)
        _size_redis_pool(self.app, self.limit)
        #: Global limits from the worker (task_time_limit, task_soft_time_limit, or the
        #: --time-limit/--soft-time-limit options); a task's own limits come per apply.
        self.timeout: float | None = kwargs.get("timeout")
        self.soft_timeout: float | None = kwargs.get("soft_timeout")
        self._running: dict[int, _Job] = {}
        self._free = self.limit
        self._slot_freed = Condition()
        self._idle = Event()
        self._idle.set()
        self._deadlines = _Deadlines(self)
        self._main: GreenThread | None = None
        self._stopping = False
        self.done = 0
        self.soft_limits_hit = 0
        self.hard_limits_hit = 0
        self.terminated = 0

    # -- life cycle ---------------------------------------------------------------------

    def on_start(self) -> None:
        try:
            self._main = current_thread()
        except Exception:  # pragma: no cover - Celery starts pools from a thread
            self._main = None
        self._deadlines.start()
        GreenThread(target=self._unstick_shutdown, name="celery-shutdown-watch", daemon=True).start()

    def _unstick_shutdown(self) -> None:
        """Make sure the consumer loop sees a shutdown signal (py-amqp with short heartbeats).

        Celery's green loop checks its shutdown flags between calls to
        ``drain_events(timeout=2.0)``. py-amqp restarts that timeout on every frame it
        reads, heartbeats included, so with ``broker_heartbeat`` below 4 s (RabbitMQ
        sends one every half interval) the call never returns and a SIGTERM is never
        acted on (gevent's pool hangs the same way). If the flag has been set for
        `_UNSTICK_AFTER_S` and the main green thread is still waiting in that call, we
        raise the timeout it asked for there; the loop then sees the flag.
        """
        from celery.worker import state

        flagged: float | None = None
        while not self._stopping:
            sleep(0.5)
            if not (_flag_set(state.should_stop) or _flag_set(state.should_terminate)):
                flagged = None
                continue
            now = monotonic()
            if flagged is None:
                flagged = now
            elif now - flagged >= _UNSTICK_AFTER_S:
                flagged = now
                main = self._main
                if main is not None and main.state == "PARKED" and _in_consumer_drain(main):
                    main.throw(TimeoutError("greensched.celery: drain_events interrupted for shutdown"))

    def on_stop(self) -> None:
        """Warm shutdown: wait for the running tasks (a cold shutdown cuts it short)."""
        if self._stopping or not self._may_wait():
            return  # nested (a signal handler), or in a handler that must not wait
        self._stopping = True
        try:
            from celery.worker import state

            while self._running:
                if _flag_set(state.should_terminate):
                    self.on_terminate()
                    break
                self._idle.wait(0.5)
        finally:
            self._stopping = False
        self._deadlines.stop()

    def on_terminate(self) -> None:
        """Cold shutdown: end every running task without reporting it (acks_late: redelivered)."""
        for job in list(self._running.values()):
            self._end(job, count=False)
        if self._may_wait():
            self._idle.wait(_UNWIND_GRACE_S)
        self._deadlines.stop()

    def _may_wait(self) -> bool:
        """Waiting is for the main green thread; signal handlers run wherever they land."""
        try:
            return self._main is None or current_thread() is self._main
        except Exception:
            return False  # in the hub itself (a handler that interrupted its poll)

    # -- running tasks ------------------------------------------------------------------

    def on_apply(self, target: Callable[..., Any], args: Any = None, kwargs: Any = None,
                 callback: Callable[..., Any] | None = None,
                 accept_callback: Callable[..., Any] | None = None,
                 timeout: float | None = None, soft_timeout: float | None = None,
                 timeout_callback: Callable[..., Any] | None = None,
                 error_callback: Callable[..., Any] | None = None,
                 waitforslot: bool = True, **_: Any) -> _Job:
        """Run ``target`` on a green thread once a slot is free (wait for one if asked)."""
        job = _Job(self, target, args, kwargs, callback, accept_callback, error_callback,
                   timeout_callback, soft_timeout or self.soft_timeout, timeout or self.timeout)
        if self._free <= 0 and waitforslot:
            with self._slot_freed:
                while self._free <= 0:
                    self._slot_freed.wait()
        self._free -= 1
        thread = job.thread = GreenThread(target=self._run_job, args=(job,), name="celery-task")
        self._running[thread.ident] = job
        self._idle.clear()
        thread.start()
        return job

    def _run_job(self, job: _Job) -> None:
        """The task's green thread: accept, run, report (unless we ended it)."""
        thread = job.thread
        assert thread is not None
        job.started = True
        try:
            if job.ended:
                return
            now = monotonic()
            if job.soft or job.hard:
                self._deadlines.add(job, now)
            if job.accept_callback is not None:
                job.accept_callback(thread.ident, now)
            try:
                result = job.target(*job.args, **job.kwargs)
            except GreenThreadExit:
                job.finished = True
                if not job.ended:
                    raise  # someone else killed it: as if the worker lost it
                return
            except (WorkerShutdown, WorkerTerminate):
                job.finished = True
                raise
            except Exception:
                job.finished = True
                if not job.ended and job.error_callback is not None:
                    job.error_callback(ExceptionInfo())
                return
            job.finished = True
            if not job.ended and job.callback is not None:
                job.callback(result)
        except GreenThreadExit:
            if not job.ended and job.callback is not None:
                self._report_lost(job, "the task's green thread was killed")
        except BaseException as exc:  # what prefork reports when a child dies of it
            if not job.ended and job.callback is not None:
                self._report_lost(job, repr(exc))
        finally:
            job.finished = True
            self._release(thread)

    def _report_lost(self, job: _Job, why: str) -> None:
        try:
            raise WorkerLostError(why)
        except WorkerLostError:
            assert job.callback is not None
            job.callback((True, ExceptionInfo(), 0.0))

    def _release(self, thread: GreenThread) -> None:
        self._running.pop(thread.ident, None)
        self.done += 1
        self._free += 1
        if self._free > 0:
            with self._slot_freed:
                self._slot_freed.notify()
        if not self._running:
            self._idle.set()

    def _end(self, job: _Job, count: bool = True) -> None:
        """End a job's thread; its outcome is not reported (Celery has, or will redeliver)."""
        if job.finished or job.ended:
            return
        job.ended = True
        if count:
            self.terminated += 1
        if job.started and job.thread is not None:
            job.thread.kill(block=False)  # (not started: it returns as soon as it runs)

    def _limit_reached(self, job: _Job, soft: bool) -> None:
        """Runs on the deadline thread, while the task's thread is parked or preempted."""
        thread = job.thread
        assert thread is not None
        if soft:
            self.soft_limits_hit += 1
            thread.throw(SoftTimeLimitExceeded())
            limit = job.soft
        else:
            self.hard_limits_hit += 1
            job.ended = True
            thread.kill(block=False)
            spawn(self._rekill, job)
            limit = job.hard
        if job.timeout_callback is not None:
            # Celery's on_timeout logs, and for the hard limit stores the failure and
            # acks: broker I/O, done on its own thread so other deadlines stay on time.
            spawn(self._call_timeout_callback, job.timeout_callback, soft, limit)

    @staticmethod
    def _call_timeout_callback(callback: Callable[..., Any], soft: bool, limit: Any) -> None:
        try:
            callback(soft, limit)
        except Exception:
            logger.exception("greensched pool: the time limit callback failed")

    def _rekill(self, job: _Job) -> None:
        """A task that catches GreenThreadExit is ended again, and we say so."""
        thread = job.thread
        assert thread is not None
        while True:
            thread.join(_REKILL_INTERVAL_S)
            if thread.done():
                return
            logger.error("greensched pool: task %r is still running past its hard time limit "
                         "(it catches GreenThreadExit?); ending it again", job)
            thread.kill(block=False)

    def terminate_job(self, pid: int, signal: Any = None) -> None:
        """``revoke(terminate=True)``: end the task's green thread (never waits)."""
        job = self._running.get(pid)
        if job is not None:
            self._end(job)

    def spawn_n(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> GreenThread:
        """A green thread for Celery's own loops (the control-command consumer)."""
        thread = GreenThread(target=fn, args=args, kwargs=kwargs, daemon=True)
        thread.start()
        return thread

    # -- autoscale and figures ----------------------------------------------------------

    def grow(self, n: int = 1) -> None:
        self.limit += n
        self._free += n
        with self._slot_freed:
            self._slot_freed.notify(n)

    def shrink(self, n: int = 1) -> None:
        n = min(n, self.limit - 1)
        if n <= 0:
            raise ValueError("the greensched pool cannot shrink below 1")
        self.limit -= n
        self._free -= n  # may go negative: running tasks give their slots back as they end

    @property
    def num_processes(self) -> int:
        return self.limit

    def _get_info(self) -> dict[str, Any]:
        info: dict[str, Any] = super()._get_info()
        info.update({
            "max-concurrency": self.limit,
            "running": len(self._running),
            "done": self.done,
            "soft-time-limits": self.soft_limits_hit,
            "hard-time-limits": self.hard_limits_hit,
            "terminated": self.terminated,
        })
        return info


mark_root(TaskPool._run_job)
