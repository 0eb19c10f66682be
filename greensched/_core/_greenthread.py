"""GreenThread: one green thread's identity, state, result and joiners.

A green thread is a *task*; the greenlet that runs it is its *carrier*. A thread that
has not started yet has no greenlet. When the hub first resumes it, the hub gives it
a carrier from a small pool of idle greenlets (or makes one), and when it finishes
without having parked, its carrier goes back to the pool and can run the next new
thread. Spawning is thus cheaper than creating a greenlet per thread, and
everything a user can observe (name, ident, state, result) belongs to the task.

States, and who moves a thread between them::

    NEW ──start()──▶ READY ──hub resumes──▶ RUNNING ──park()──▶ PARKED
                       ▲                      │  │                 │
                       └──── yield/preempt ───┘  │                 │
                       ▲                         ▼                 │
                       └──────── unpark() ◀──────┼─────────────────┘
                                                 ▼
                                               DONE
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from greenlet import GreenletExit, greenlet

from ._errors import GreenThreadExit
from ._waitqueue import WaitQueue

if TYPE_CHECKING:
    from ._hub import Hub

__all__ = ["GreenThread", "NEW", "READY", "RUNNING", "PARKED", "DONE"]

NEW = "NEW"
READY = "READY"
RUNNING = "RUNNING"
PARKED = "PARKED"
DONE = "DONE"

_idents = itertools.count(1)
_NOTHING: Any = object()


class GreenThread:
    """A green thread, shaped like `threading.Thread`.

    ``GreenThread(target, name=None, args=(), kwargs=None, *, daemon=None)`` then
    ``start()``; or simply ``spawn(fn, *args, **kwargs)``. Subclasses may override
    `run`, as with `threading.Thread`; its return value becomes `result`.
    """

    __slots__ = (
        "name", "_daemon", "_target", "_args", "_kwargs", "_ident", "_hub", "_glet",
        "_state", "_result", "_exc", "_killed", "_joiners", "_park_seq", "_waiting_on",
        "_resume_value", "_resume_exc", "_held_exc", "_ready_at", "__weakref__", "__dict__",
    )

    def __init__(
        self,
        target: Callable[..., Any] | None = None,
        name: str | None = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        daemon: bool | None = None,
    ) -> None:
        if target is not None and not callable(target):
            raise TypeError(
                f"GreenThread target must be callable, not {type(target).__name__}: "
                f"pass the function itself, e.g. spawn(work, arg), not spawn(work(arg))"
            )
        self._ident = next(_idents)
        self.name = str(name) if name is not None else f"GreenThread-{self._ident}"
        self._daemon = bool(daemon) if daemon is not None else False
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs) if kwargs else {}
        self._hub: Hub | None = None
        self._glet: greenlet | None = None
        self._state = NEW
        self._result: Any = None
        self._exc: BaseException | None = None
        self._killed = False
        self._joiners: WaitQueue | None = None
        self._park_seq = 0
        self._waiting_on: str | None = None
        self._resume_value: Any = _NOTHING
        self._resume_exc: BaseException | None = None
        #: An exception held back by preemption (see _preempt), and since when.
        self._held_exc: tuple[BaseException, float] | None = None
        #: When it last became READY (monotonic): the hub measures run-queue waits.
        self._ready_at = 0.0

    # -- threading.Thread-shaped API -------------------------------------------------

    def start(self) -> GreenThread:
        """Make the thread ready to run in this OS thread's hub; returns the thread."""
        if self._state is not NEW:
            raise RuntimeError("threads can only be started once")
        from ._hub import get_hub  # the hub imports this module; resolve at call time

        get_hub().start_thread(self)
        return self

    def run(self) -> Any:
        """The thread's work: calls the target. Override in a subclass if you like."""
        target = self._target
        if target is None:
            return None
        if self._args or self._kwargs:
            return target(*self._args, **self._kwargs)
        # No `*` when there is nothing to spread: on 3.11 and 3.12 a call with `*`
        # takes a C frame of the interpreter, kept in a parked thread's saved stack.
        return target()

    @property
    def ident(self) -> int:
        """A small integer unique to this green thread for the life of the process."""
        return self._ident

    @property
    def daemon(self) -> bool:
        """Daemon threads are not waited for when the program ends."""
        return self._daemon

    @daemon.setter
    def daemon(self, value: bool) -> None:
        if self._state is not NEW:
            raise RuntimeError("cannot set daemon status of active thread")
        self._daemon = bool(value)

    @property
    def state(self) -> str:
        """One of NEW, READY, RUNNING, PARKED, DONE."""
        return self._state

    def is_alive(self) -> bool:
        """True from `start` until the thread finishes."""
        return self._state is not NEW and self._state is not DONE

    def done(self) -> bool:
        """True once the thread has finished (returned, raised, or was killed)."""
        return self._state is DONE

    def join(self, timeout: float | None = None) -> None:
        """Wait until the thread finishes, or ``timeout`` seconds pass.

        Like `threading.Thread.join`: returns None either way (check `done()`), and
        a negative timeout means "don't wait".
        """
        if self._state is NEW:
            raise RuntimeError("cannot join thread before it is started")
        hub = self._hub
        assert hub is not None
        if hub.current is self:
            raise RuntimeError("cannot join current thread")
        if self._state is DONE:
            return
        if timeout is not None:
            timeout = max(float(timeout), 0.0)
            if timeout == 0.0:
                return
        if self._joiners is None:
            self._joiners = WaitQueue(hub, f"join({self.name!r})")
        self._joiners.park(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the thread and return what its target returned.

        Re-raises the exception the thread died of. Raises `TimeoutError` if it is
        still running after ``timeout`` seconds, and `RuntimeError` if it was killed.
        """
        self.join(timeout)
        if self._state is not DONE:
            raise TimeoutError(f"green thread {self.name!r} did not finish within {timeout} s")
        if self._exc is not None:
            raise self._exc
        if self._killed:
            raise RuntimeError(f"green thread {self.name!r} was killed before it returned a result")
        return self._result

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the thread; return the exception it died of, or None."""
        self.join(timeout)
        if self._state is not DONE:
            raise TimeoutError(f"green thread {self.name!r} did not finish within {timeout} s")
        return self._exc

    def kill(self, block: bool = True, timeout: float | None = None) -> None:
        """Raise `GreenThreadExit` inside the thread, where it is parked or was preempted.

        Its ``finally`` blocks and ``with`` exits run. With ``block`` (the default),
        wait up to ``timeout`` seconds for it to finish. Killing a thread that has not
        run yet ends it without running it; killing a finished thread does nothing;
        a thread that kills itself raises `GreenThreadExit` at once.
        """
        hub = self._hub
        if self._state is NEW:
            self._killed = True
            self._state = DONE
            return
        if self._state is DONE or hub is None:
            return
        if hub.current is self:
            raise GreenThreadExit()
        if not hub.throw(self, GreenThreadExit()):
            return
        if block:
            self.join(timeout)

    def throw(self, exc: BaseException) -> bool:
        """Raise ``exc`` inside the thread, where it is parked or was preempted.

        What `kill` does with `GreenThreadExit`, for any exception, and without
        waiting: a thread parked in a wait gets it from that wait; a thread preempted
        while computing gets it where it stopped, when it next runs (so a CPU-bound
        thread is reached too; see the preemption notes on held-back exceptions).
        Returns True if ``exc`` is on its way; False if the thread is not started,
        is done, or already has another exception on its way (a pending kill is
        never replaced, and a kill replaces others). A thread that throws into
        itself raises ``exc`` at once; one that has not run yet ends without
        running, as with `kill`.
        """
        if not isinstance(exc, BaseException):
            raise TypeError(
                f"GreenThread.throw() takes an exception instance, not {type(exc).__name__}: "
                f"e.g. thread.throw(TimeoutError('too slow'))"
            )
        hub = self._hub
        if self._state is NEW or self._state is DONE or hub is None:
            return False
        if hub.current is self:
            raise exc
        return hub.throw(self, exc)

    def __repr__(self) -> str:
        daemon = " daemon" if self._daemon else ""
        where = f" on {self._waiting_on}" if self._state is PARKED and self._waiting_on else ""
        return f"<GreenThread {self.name!r} ident={self._ident} {self._state}{daemon}{where}>"

    # -- the hub's side ---------------------------------------------------------------

    def _is_parked(self) -> bool:
        return self._state is PARKED

    def _bootstrap(self) -> None:
        """Run the thread to completion in the current carrier greenlet."""
        hub = self._hub
        assert hub is not None
        try:
            self._result = self.run()
        except (GreenThreadExit, GreenletExit):
            self._killed = True
        except SystemExit:
            pass  # like threading: a thread may end itself with sys.exit()
        except BaseException as exc:  # reported, kept for result(), never stops the hub
            self._exc = exc
            hub.report_exception(self, exc)
        finally:
            self._finish()

    def _finish(self) -> None:
        """Mark the thread done, tell the hub, wake every joiner."""
        self._target = None
        self._args = ()
        self._kwargs = {}
        self._state = DONE
        self._glet = None
        hub = self._hub
        assert hub is not None
        hub.thread_finished(self)
        if self._joiners is not None:
            self._joiners.wake_all()


def report_exception(thread: GreenThread, exc: BaseException, file: Any = None) -> None:
    """Print an uncaught exception the way `threading.excepthook` does.

    The traceback already says what the thread was doing; the ident is added to the
    name because names need not be unique, and it is what `dump_stacks` shows too.
    """
    import traceback

    out = file if file is not None else sys.stderr
    if out is None:
        return
    try:
        out.write(f"Exception in green thread {thread.name} (ident {thread._ident}):\n")
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=out)
        out.flush()
    except Exception:
        pass
