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

import sys
import warnings
from collections import deque
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

from . import Condition, Event, GreenThread, GreenThreadExit, current_thread, is_patched, original, sleep

# Private, on purpose; it should become public API once the core's restructuring settles
# (gunicorn.py, monkey/_threading.py use it too): the preemptor never switches while a
# greensched frame is on the stack, so `TaskPool._run_job`, which calls task code, must be
# declared an entry point, or a computing task would never be preempted.
from ._core._preempt import mark_root

# Integrations sit above the patches (docs/design.md §9): how long psycopg's cancel may take.
from .monkey._psycopg import CANCEL_GRACE

try:
    from billiard.einfo import ExceptionInfo
    from billiard.exceptions import WorkerLostError
    from celery.concurrency import base as _base
    from celery.exceptions import SoftTimeLimitExceeded, WorkerShutdown, WorkerTerminate
    from celery.utils.log import get_logger
    from kombu.utils import compat as _kombu_compat
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "greensched.celery needs Celery 5.3 or later; install it with `pip install celery`"
    ) from _exc

from ._celery_timers import Deadlines, ShutdownWatch, Timer, flag_set

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
#: How long a task we ended (hard limit, revoke) may unwind before we end it again and log
#: it: its ``finally`` blocks run, and psycopg cancels its query, up to `CANCEL_GRACE`; a
#: second kill sooner would cut that short and leave the query running on the server.
_END_GRACE_S = CANCEL_GRACE + 1.0
#: Then, how often a task that still runs (it catches GreenThreadExit, or sits in a C
#: call) is ended again; a warm shutdown waits for it one interval more, then goes on.
_REKILL_INTERVAL_S = 1.0
#: A soft limit that throw() refused (another exception on its way) is retried this much later.
_SOFT_RETRY_S = 0.01


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


class _Job:
    """One task given to the pool: what to call, its callbacks, its thread and limits."""

    __slots__ = ("target", "args", "kwargs", "callback", "accept_callback", "error_callback",
                 "timeout_callback", "soft", "hard", "thread", "started", "ended", "ended_at", "ended_by",
                 "finished", "pool", "__weakref__")

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
        #: When and why we ended it: it gets `_END_GRACE_S` to unwind, then is ended again.
        self.ended_at = 0.0
        self.ended_by = ""
        self.finished = False

    def terminate(self, signal: Any = None) -> None:
        """What Celery calls on the object `apply_async` returned (``revoke(terminate=True)``)."""
        self.pool._end(self)

    def __repr__(self) -> str:
        ident = self.thread.ident if self.thread is not None else None
        return f"<greensched.celery job {getattr(self.target, '__name__', self.target)} thread={ident}>"


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
        #: Jobs given without waiting (``worker_pool_putlocks=False``), started as slots free.
        self._pending: deque[_Job] = deque()
        self._free = self.limit
        self._slot_freed = Condition()
        #: Set when no task runs or waits for a slot and no time-limit report is on its way.
        self._idle = Event()
        self._idle.set()
        self._deadlines = Deadlines(self._limit_reached, lambda: len(self._running))
        self._main: GreenThread | None = None
        self._watch = ShutdownWatch(lambda: self._main)
        #: Time limit reports being made (`_call_timeout_callback`): a warm stop awaits them.
        self._reporting: set[GreenThread] = set()
        self._stopping = False
        #: on_stop ran but could not wait: the last task to end stops the deadline keeper.
        self._closing = False
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
        self._closing = False
        self._deadlines.start()
        self._watch.start()

    def on_stop(self) -> None:
        """Warm shutdown: wait for the running and queued tasks (a cold shutdown cuts it short).

        Not for ever for a task we ended (hard limit, revoke) that does not return: see
        `_only_abandoned_left`. Its outcome is reported already; prefork would kill it.
        """
        if self._stopping:
            return  # nested: a signal handler during the wait below
        self._closing = True
        if not self._may_wait():
            # In a handler: no waiting. The watch stays (the consumer may be stuck in its broker
            # wait); so does the keeper while tasks run (their limits apply): the last one stops it.
            if self._is_idle():
                self._deadlines.stop()
            return
        self._stopping = True
        try:
            from celery.worker import state

            self._watch.stop(wait=True)  # the consumer loop is over: nothing to unstick
            while not self._is_idle():
                if flag_set(state.should_terminate):
                    self.on_terminate()
                    break
                if self._only_abandoned_left():
                    break
                self._idle.wait(0.5)
        finally:
            self._stopping = False
        self._stop_helpers(wait=True)

    def on_terminate(self) -> None:
        """Cold shutdown: end every task without reporting it (acks_late: redelivered).

        Tasks queued for a slot are dropped: never accepted, so never acked (redelivered).
        """
        pending, self._pending = self._pending, deque()
        for job in pending:
            job.ended = True
        for job in list(self._running.values()):
            self._end(job, count=False, why=None)
        wait = self._may_wait()
        if wait:
            self._idle.wait(_UNWIND_GRACE_S)
        self._stop_helpers(wait=wait)

    def _is_idle(self) -> bool:
        return not self._running and not self._pending and not self._reporting

    def _only_abandoned_left(self) -> bool:
        """Do only tasks we ended, and that had their grace and a kill more, still run?"""
        if self._pending or self._reporting or not self._running:
            return False
        now = monotonic()
        jobs = list(self._running.values())
        if not all(job.ended and now - job.ended_at >= _END_GRACE_S + _REKILL_INTERVAL_S for job in jobs):
            return False
        logger.error("greensched pool: warm shutdown goes on without %d ended task(s) that have not "
                     "returned: "
                     "%r; abandoned at exit (daemon threads), as prefork would kill them", len(jobs), jobs)
        return True

    def _stop_helpers(self, wait: bool) -> None:
        """End the pool's own green threads: the shutdown watcher and the deadline keeper."""
        self._watch.stop(wait)
        self._deadlines.stop(wait)

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
        """Run ``target`` on a green thread once a slot is free: with ``waitforslot`` (putlocks,
        the default) the consumer waits for it; else the job is queued, as the threads pool does."""
        job = _Job(self, target, args, kwargs, callback, accept_callback, error_callback,
                   timeout_callback, soft_timeout or self.soft_timeout, timeout or self.timeout)
        if self._free <= 0:
            if not waitforslot:
                self._pending.append(job)
                self._idle.clear()
                return job
            with self._slot_freed:
                while self._free <= 0:
                    self._slot_freed.wait()
        self._start(job)
        return job

    def _start(self, job: _Job) -> None:
        self._free -= 1
        # Daemon: exit need not wait for tasks (a warm stop has), nor hang on one that will not end.
        thread = job.thread = GreenThread(target=self._run_job, args=(job,), name="celery-task", daemon=True)
        self._running[thread.ident] = job
        self._idle.clear()
        thread.start()

    def _start_pending(self) -> None:
        """Give the free slots to queued jobs, first come first served."""
        while self._pending and self._free > 0:
            job = self._pending.popleft()
            if not job.ended:  # revoked while it waited
                self._start(job)

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
        self._start_pending()
        if self._free > 0:
            with self._slot_freed:
                self._slot_freed.notify()
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        if self._is_idle():
            self._idle.set()
            if self._closing and not self._stopping:
                self._deadlines.stop()  # on_stop could not wait: the last task stops it

    def _end(self, job: _Job, count: bool = True, why: str | None = "it was revoked") -> None:
        """End a job's thread; its outcome is not reported (Celery has, or will redeliver).

        With ``why``, if it has not ended after its grace it is ended again and logged."""
        if job.finished or job.ended:
            return
        if count:
            self.terminated += 1
        if job.started:
            self._kill(job, why)
            return
        job.ended = True  # not started: it returns as soon as it runs
        if job.thread is None:  # still queued for a slot: it never starts
            try:
                self._pending.remove(job)
            except ValueError:
                pass
            self._maybe_idle()

    def _kill(self, job: _Job, why: str | None) -> None:
        """End a started job's thread; with ``why``, end it again if it outlives its grace."""
        assert job.thread is not None
        job.ended = True
        job.ended_at = monotonic()
        job.thread.kill(block=False)  # a kill replaces any other pending exception
        if why is not None:
            job.ended_by = why
            self._deadlines.push(job, job.ended_at + _END_GRACE_S, "rekill")

    def _limit_reached(self, job: _Job, kind: str) -> None:
        """A deadline of an unfinished job: ``"soft"``, ``"hard"``, or a ``"rekill"`` (`_kill`).

        Runs on the deadline keeper's thread, while the task's thread is parked or preempted.
        """
        thread = job.thread
        assert thread is not None
        if kind.startswith("rekill"):
            if thread.done():
                return
            if kind == "rekill":  # the first: say so once
                logger.error("greensched pool: task %r has not ended %.0f s after %s: it catches "
                             "GreenThreadExit, or is in a call that does not return to Python; "
                             "ending it again every %.0f s", job, _END_GRACE_S, job.ended_by,
                             _REKILL_INTERVAL_S)
            thread.kill(block=False)
            self._deadlines.push(job, monotonic() + _REKILL_INTERVAL_S, "rekill again")
            return
        if job.ended:
            return  # revoked or ended meanwhile
        soft = kind == "soft"
        if soft:
            if not thread.throw(SoftTimeLimitExceeded()):
                # Refused: another exception is on its way to the task (a Timeout of
                # its own, say). Neither counted nor reported; tried again once the
                # task has had that one (a task that dies of it is skipped then).
                self._deadlines.push(job, monotonic() + _SOFT_RETRY_S, "soft")
                return
            self.soft_limits_hit += 1
            limit = job.soft
        else:
            self.hard_limits_hit += 1
            self._kill(job, "its hard time limit")
            limit = job.hard
        if job.timeout_callback is not None:
            # Celery's on_timeout logs, and for the hard limit stores the failure and acks: broker
            # I/O, on its own (daemon) thread so other deadlines stay on time; a warm stop awaits it.
            reporter = GreenThread(target=self._call_timeout_callback, name="celery-time-limit-report",
                                   args=(job.timeout_callback, soft, limit), daemon=True)
            self._reporting.add(reporter)
            self._idle.clear()
            reporter.start()

    def _call_timeout_callback(self, callback: Callable[..., Any], soft: bool, limit: Any) -> None:
        try:
            callback(soft, limit)
        except Exception:
            logger.exception("greensched pool: the time limit callback failed")
        finally:
            self._reporting.discard(current_thread())
            self._maybe_idle()

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
        self._start_pending()
        if self._free > 0:
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
