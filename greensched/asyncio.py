"""asyncio and green threads in one program, both ways, on one OS thread.

* From a coroutine, ``await greensched.asyncio.to_green(fn, *args)`` runs blocking
  code on a green thread and resumes with its result or exception (asyncio's
  ``to_thread``, without an OS thread). Cancelling the awaiting task kills the green
  thread at its next park or preemption point and waits for its ``finally`` blocks.
* From green code, ``greensched.asyncio.run_coroutine(coro, timeout=None)`` parks the
  calling green thread until ``coro`` has run on this OS thread's *shared loop*, and
  returns its result (asyncio's ``run_coroutine_threadsafe(...).result()``, without
  an OS thread). The timeout cancels the coroutine.

Importing this module installs what ``patch_all()`` installs for asyncio (see
`greensched.monkey._asyncio`): a running loop and a current loop per green thread,
and loops whose waits park their green thread, so that every green thread may also
run its own ``asyncio.run()``. Loops made *before* the import keep the stdlib's
selector, which blocks the OS thread; `to_green` refuses to run on one.

The shared loop is a `greensched.asyncio.EventLoop` run by a daemon green thread of
its own: waiting, it parks on the hub (the netpoller watches the loop's epoll fd),
and a green thread handing it a coroutine wakes it directly, without a syscall. It
runs while it has work (a ``run_coroutine`` in flight, a task alive) and stops
shortly after, so ``greensched.run()`` and the end of the program do not wait on it;
the next ``run_coroutine`` starts it again, with the same loop. docs/asyncio.md has
the design and the limits.
"""

from __future__ import annotations

import _thread
import asyncio
import atexit
import concurrent.futures
import contextvars
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from . import GreenThread, GreenThreadExit, SimpleQueue, current_thread, sleep
from .monkey._asyncio import EventLoop, HubSelector, Waiter, install, mark_root
from .net.select import GreenSelector, GreenSelectSelector

__all__ = ["to_green", "run_coroutine", "shared_loop", "EventLoop", "HubSelector"]

T = TypeVar("T")

install()

#: How long the shared loop, and an idle to_green worker, stay once there is nothing to do (s).
_LINGER = 0.05


def _waker(loop: asyncio.AbstractEventLoop) -> Callable[[], None] | None:
    """How a green thread of this OS thread wakes ``loop``: its selector's wakeup, or None
    for a green selector with no wakeup (``call_soon_threadsafe`` does it then).

    A loop whose waits block the OS thread cannot be woken by a green thread that never
    gets to run: that is an error that says how to make a loop that parks instead.
    """
    selector = getattr(loop, "_selector", None)
    if isinstance(selector, HubSelector):
        return selector.wakeup
    if isinstance(selector, (GreenSelector, GreenSelectSelector)):
        return None
    raise RuntimeError(
        f"to_green() needs an event loop that parks its green thread while it waits, and "
        f"{type(loop).__name__} with {type(selector).__name__} blocks the OS thread (the green "
        f"thread would never run). Make the loop after importing greensched.asyncio (or after "
        f"patch_all()): asyncio.run() and asyncio.new_event_loop() then make one, or pass "
        f"loop_factory=greensched.asyncio.EventLoop."
    )


def _schedule(loop: asyncio.AbstractEventLoop, wake: Callable[[], None] | None,
              callback: Callable[..., Any], *args: Any) -> None:
    """Run ``callback(*args)`` on ``loop`` soon, from another green thread of its OS thread."""
    if wake is None or loop.get_debug():
        # Debug mode checks that call_soon comes from the loop's own (green) thread.
        loop.call_soon_threadsafe(callback, *args)
    else:
        loop.call_soon(callback, *args)
        wake()


# -- from a coroutine: to_green ---------------------------------------------------------------

_PENDING, _RUNNING, _DONE, _DROPPED = range(4)


class _GreenCall:
    """One `to_green` call: what a worker runs, and the hand-back to the loop."""

    __slots__ = ("loop", "wake", "future", "func", "args", "kwargs", "context", "state",
                 "thread", "finished")

    def __init__(self, loop: asyncio.AbstractEventLoop, wake: Callable[[], None] | None,
                 func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.loop = loop
        self.wake = wake
        self.future: asyncio.Future[Any] = loop.create_future()
        self.func = func
        self.args = args
        self.kwargs = kwargs
        # Like asyncio.to_thread: the call sees the awaiting task's context variables.
        self.context = contextvars.copy_context()
        self.state = _PENDING
        #: The worker running it (while _RUNNING): the one a cancellation kills.
        self.thread: GreenThread | None = None
        #: Made when the awaiting task is cancelled: done when the call has ended.
        self.finished: asyncio.Future[None] | None = None

    def run(self, thread: GreenThread) -> bool:
        """Run the call on ``thread``; hand the outcome to the loop. True if it was killed."""
        self.state = _RUNNING
        self.thread = thread
        func, args, kwargs = self.func, self.args, self.kwargs
        self.func = self.args = self.kwargs = None  # type: ignore[assignment]
        try:
            value = self.context.run(func, *args, **kwargs)
            ok = True
        except BaseException as exc:  # the coroutine gets it, as to_thread's future would
            value, ok = exc, False
        self.state = _DONE
        self.thread = None
        loop = self.loop
        if not loop.is_closed():
            if self.wake is None or loop.get_debug():
                loop.call_soon_threadsafe(self._deliver, ok, value)
            else:
                # Resolved from here, not from a callback: the future schedules the task's
                # wake-up itself, one loop iteration sooner (same OS thread: no race; this
                # frame is greensched's, so it is not preempted half-way).
                self._deliver(ok, value)
                self.wake()
        return not ok and isinstance(value, GreenThreadExit)

    def _deliver(self, ok: bool, value: Any) -> None:
        future = self.future
        if not future.done():
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        finished = self.finished
        if finished is not None and not finished.done():
            finished.set_result(None)


mark_root(_GreenCall.run)  # the user's function runs below it: preemptible there


class _Workers:
    """Green threads kept parked between `to_green` calls of one OS thread.

    Starting a green thread costs more than the rest of a call (about 10 us, measured
    here under load, against 2 for a hand-off to a parked one). Idle workers end when
    a whole `_LINGER` period passes without a call (a reaper thread looks once per
    period, rather than a timer per wait: 7% of a call), so that ``greensched.run()``
    and the program's end do not wait on them; a killed one (a cancelled call) ends.
    """

    def __init__(self) -> None:
        self.jobs = SimpleQueue()
        self.idle = 0  # workers parked in jobs.get()
        self.alive = 0
        self.used = False  # a call came since the reaper last looked
        self.reaper: GreenThread | None = None

    def submit(self, call: _GreenCall) -> None:
        self.used = True
        if self.idle:
            self.idle -= 1
            self.jobs.put(call)
            return
        self.alive += 1
        GreenThread(self._work, args=(call,), name="greensched.asyncio worker", daemon=True).start()
        if self.reaper is None:
            self.reaper = GreenThread(self._reap, name="greensched.asyncio reaper", daemon=True)
            self.reaper.start()

    def _work(self, call: _GreenCall | None) -> None:
        me = current_thread()
        jobs = self.jobs
        idle = False
        try:
            while True:
                if call is not None and call.state == _PENDING:
                    if call.run(me):
                        return  # killed: the kill was meant for this thread's call; end as asked
                self.idle += 1  # and parked in get() before anyone else runs (greensched code)
                idle = True
                call = jobs.get()
                idle = False
                if call is None:  # sent by the reaper, which counted us out of `idle`
                    return
        finally:
            self.alive -= 1
            if idle:  # killed while idle (by whoever enumerated the threads): not there any more
                self.idle = max(self.idle - 1, 0)
                if not jobs.empty():  # a call handed to us as we went
                    self.alive += 1
                    GreenThread(self._work, args=(None,), name="greensched.asyncio worker",
                                daemon=True).start()

    def _reap(self) -> None:
        while self.alive:
            self.used = False
            sleep(_LINGER)
            if not self.used:
                idle, self.idle = self.idle, 0
                for _ in range(idle):
                    self.jobs.put(None)
        self.reaper = None


_workers: dict[int, _Workers] = {}


async def to_green(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``func(*args, **kwargs)`` on a green thread and return (or raise) what it does.

    The awaiting coroutine is suspended, its loop keeps running, and the green thread
    runs beside the loop's own green thread on the same OS thread: blocking code
    (green sockets, ``time.sleep`` under ``patch_all()``, locks) only parks it.
    Context variables are copied, as `asyncio.to_thread` does. The green threads are
    kept and reused between calls (daemon threads, ended after a short idle time).

    Cancelling the awaiting task raises `greensched.GreenThreadExit` in the green
    thread where it is parked or next preempted; the task's `asyncio.CancelledError`
    is raised once the call has ended (its ``finally`` blocks have run). A call that
    has not started yet is dropped.
    """
    loop = asyncio.get_running_loop()
    call = _GreenCall(loop, _waker(loop), func, args, kwargs)
    key = _thread.get_ident()
    workers = _workers.get(key)
    if workers is None:
        workers = _workers[key] = _Workers()
    workers.submit(call)
    try:
        return await call.future  # type: ignore[no-any-return]
    except asyncio.CancelledError:
        if not call.future.cancelled():
            raise  # func itself raised CancelledError: it is its result
        if call.state == _PENDING:
            call.state = _DROPPED
            raise
        thread = call.thread
        if call.state != _RUNNING or thread is None:
            raise  # it ended meanwhile
        finished = call.finished = loop.create_future()
        thread.kill(block=False)
        while not finished.done():
            try:
                await asyncio.shield(finished)
            except asyncio.CancelledError:
                continue  # cancelled again: the thread is already being killed
        raise


# -- from green code: run_coroutine -----------------------------------------------------------


class _SharedLoop:
    """One OS thread's shared loop and the green thread that runs it while it has work."""

    def __init__(self) -> None:
        self.loop = EventLoop()
        self.wake: Callable[[], None] = self.loop._selector.wakeup  # type: ignore[attr-defined]
        self.thread: GreenThread | None = None
        self.in_flight = 0
        self.idle_check: asyncio.TimerHandle | None = None

    def begin(self) -> None:
        """A `run_coroutine` call starts: make sure the loop runs."""
        self.in_flight += 1
        if self.thread is None:
            self._start()

    def _start(self) -> None:
        thread = self.thread = GreenThread(self._run, name="greensched.asyncio shared loop",
                                           daemon=True)
        thread.start()

    def end(self) -> None:
        """On the loop: a `run_coroutine` call's task is done."""
        self.in_flight -= 1
        if self.in_flight == 0 and self.idle_check is None:
            self.idle_check = self.loop.call_later(_LINGER, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        self.idle_check = None
        if self.in_flight:
            return  # busy again; the call that ends last checks again
        if any(not task.done() for task in asyncio.all_tasks(self.loop)):
            self.idle_check = self.loop.call_later(_LINGER, self._stop_if_idle)
            return
        self.loop.stop()

    def _run(self) -> None:
        # Not preempted between the check and `thread = None` (greensched code, see
        # _safepoints): a `begin` either sees the thread gone or is seen here.
        try:
            while True:
                self.loop.run_forever()
                if not self.in_flight or self.loop.is_closed():
                    return
        finally:
            self.thread = None
            if self.in_flight and not self.loop.is_closed():
                # Something escaped the loop (a callback's KeyboardInterrupt, a kill): this
                # thread reports it and ends; the calls in flight go on in a new one.
                self._start()


mark_root(_SharedLoop._run)  # coroutines run below it: a spinning one is preempted

#: The shared loop of each OS thread, by its ident.
_shared: dict[int, _SharedLoop] = {}


def _shared_loop() -> _SharedLoop:
    key = _thread.get_ident()
    shared = _shared.get(key)
    if shared is None or shared.loop.is_closed():
        shared = _shared[key] = _SharedLoop()
    return shared


def shared_loop() -> asyncio.AbstractEventLoop:
    """This OS thread's shared loop, the one `run_coroutine` runs coroutines on.

    Made on first use. Objects bound to a loop (an ``aiohttp.ClientSession``, an
    ``httpx.AsyncClient``'s connections) must be made and used in coroutines run
    there. It runs only while `run_coroutine` calls or tasks keep it busy.
    """
    return _shared_loop().loop


class _CoroCall:
    """One `run_coroutine` call: its task, its outcome, and what its caller parks on."""

    __slots__ = ("coro", "shared", "task", "ok", "value", "done")

    def __init__(self, coro: Coroutine[Any, Any, Any], shared: _SharedLoop) -> None:
        self.coro: Coroutine[Any, Any, Any] | None = coro
        self.shared = shared
        self.task: asyncio.Task[Any] | None = None
        self.ok = False
        #: The coroutine's result, or its exception (CancelledError if it was cancelled).
        self.value: Any = None
        self.done = Waiter("run_coroutine()")

    def start(self) -> None:
        """Make the task, which runs the coroutine and then wakes the caller.

        Called by the caller itself when the loop is in its plain state (no debug
        checks, no task factory that could run the coroutine's first step right
        here): making a task only schedules its first step, and the caller's
        context variables are copied into it. Otherwise called on the loop.
        """
        coro, self.coro = self.coro, None
        if coro is None:
            return  # cancelled before it started
        try:
            self.task = self.shared.loop.create_task(self._run(coro))
        except BaseException as exc:
            coro.close()
            self._end(False, exc)

    async def _run(self, coro: Coroutine[Any, Any, Any]) -> None:
        # The caller is woken from inside the task's last step, not by a done callback
        # (one loop iteration sooner). Whatever the coroutine raised is the caller's:
        # the task itself ends normally, so asyncio logs nothing about it.
        try:
            value = await coro
        except BaseException as exc:
            self._end(False, exc)
        else:
            self._end(True, value)

    def _end(self, ok: bool, value: Any) -> None:
        self.ok = ok
        self.value = value
        self.shared.end()
        self.done.set()

    def cancel(self) -> None:
        """On the loop: cancel the task (or, not made yet, never make it)."""
        if self.task is not None:
            self.task.cancel()
        elif self.coro is not None:
            self.coro.close()
            self.coro = None
            self._end(False, asyncio.CancelledError())


def run_coroutine(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on this OS thread's shared loop; park until it is done; return its result.

    Re-raises the coroutine's exception. After ``timeout`` seconds (None: no limit) the
    coroutine is cancelled, and `TimeoutError` is raised once it has finished
    cancelling (if it finished with a result meanwhile, that is returned). A coroutine
    cancelled otherwise raises `concurrent.futures.CancelledError`, as
    ``run_coroutine_threadsafe(...).result()`` does. If the calling green thread is
    killed or interrupted (`greensched.Timeout`) while it waits, the coroutine is
    cancelled and the exception goes on.

    The task gets a copy of the caller's context variables, as `to_green`'s call gets
    the awaiting task's. Call it from green code, not from a coroutine on the shared
    loop (that would wait for itself): there, ``await`` the coroutine.
    """
    if not asyncio.iscoroutine(coro):
        raise TypeError(
            f"run_coroutine() takes a coroutine object, not {type(coro).__name__}: call the "
            f"coroutine function, e.g. run_coroutine(fetch(url)), not run_coroutine(fetch)"
        )
    shared = _shared_loop()
    loop = shared.loop
    if asyncio._get_running_loop() is loop:
        coro.close()
        raise RuntimeError(
            "run_coroutine() was called from a coroutine running on the shared loop, which "
            "would wait for itself forever: await the coroutine there instead"
        )
    call = _CoroCall(coro, shared)
    shared.begin()
    if loop.get_debug() or loop.get_task_factory() is not None:
        _schedule(loop, shared.wake, call.start)
    else:
        call.start()
        shared.wake()
    done = call.done
    try:
        if not done.wait(timeout):
            _schedule(loop, shared.wake, call.cancel)
            done.wait()
            if not call.ok and isinstance(call.value, asyncio.CancelledError):
                raise TimeoutError(f"the coroutine did not finish within {timeout} s; it was cancelled")
    except BaseException:
        if not done.is_set():  # killed, or a greensched.Timeout: the coroutine is not wanted
            _schedule(loop, shared.wake, call.cancel)
        raise
    if call.ok:
        return call.value  # type: ignore[no-any-return]
    if isinstance(call.value, asyncio.CancelledError):
        raise concurrent.futures.CancelledError("the coroutine was cancelled")
    raise call.value


def _close_at_exit() -> None:
    """Close the shared loops that are not running (a daemon loop thread may still be)."""
    for shared in list(_shared.values()):
        loop = shared.loop
        if not loop.is_running() and not loop.is_closed():
            loop.close()


atexit.register(_close_at_exit)


def _forget_after_fork() -> None:
    # The parent's loops and workers are not the child's (a forked child keeps only
    # the green thread that forked).
    _shared.clear()
    _workers.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
