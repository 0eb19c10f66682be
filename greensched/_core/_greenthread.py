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

Also NEW → DONE (killed before it started), READY → DONE (killed before it first
ran) and PARKED → DONE (the other threads of a forked child). Every change of state
is one of these edges; in debug mode (`_debug`) each is checked as it happens (see
"the one state transition" at the end of this module).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from greenlet import GreenletExit, greenlet

from . import _local
from ._debug import DEBUG
from ._errors import GreenThreadExit, StateTransitionError
from ._parking import Parker
from ._waitqueue import WaitQueue

__all__ = [
    "GreenThread", "NEW", "READY", "RUNNING", "PARKED", "DONE", "LEGAL_TRANSITIONS", "ThreadHub",
    "adopt_running",
]

NEW = "NEW"
READY = "READY"
RUNNING = "RUNNING"
PARKED = "PARKED"
DONE = "DONE"

#: Every legal change of state, as ``{from: {to, ...}}`` (the graph above).
LEGAL_TRANSITIONS: Mapping[str, frozenset[str]] = {
    NEW: frozenset({READY, DONE}),
    READY: frozenset({RUNNING, DONE}),
    RUNNING: frozenset({PARKED, READY, DONE}),
    PARKED: frozenset({READY, DONE}),
    DONE: frozenset(),
}

_idents = itertools.count(1)


class ThreadHub(Parker, Protocol):
    """What a green thread needs of its hub (`_hub.Hub`), named here so that this
    module need not import the hub's: the hub imports this one."""

    #: The green thread running now; None while the hub itself runs.
    current: GreenThread | None

    def start_thread(self, thread: GreenThread) -> None: ...
    def thread_finished(self, thread: GreenThread) -> None: ...
    def report_exception(self, thread: GreenThread, exc: BaseException) -> None: ...
    def throw(self, thread: GreenThread, exc: BaseException) -> bool: ...
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
        "_resume_value", "_resume_exc", "_held_exc", "_ready_at", "_no_preempt", "__weakref__",
        "__dict__",
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
        self._hub: ThreadHub | None = None
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
        #: How deep it is in `no_preempt` sections: its own, so that one parked inside
        #: a section leaves the others preemptible.
        self._no_preempt = 0

    # -- threading.Thread-shaped API -------------------------------------------------

    def start(self) -> GreenThread:
        """Make the thread ready to run in this OS thread's hub; returns the thread."""
        if self._state is not NEW:
            raise RuntimeError("threads can only be started once")
        _local.get_hub().start_thread(self)
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


# -- the one state transition ------------------------------------------------------------
#
# A thread's state changes only by assignment to its ``_state`` slot, in the hub and in
# `GreenThread` (nine places). Off, that is all it is: the hot paths pay nothing. In
# debug mode the slot's descriptor is wrapped, once, at import, by a property whose
# setter checks every assignment against `LEGAL_TRANSITIONS` and raises at the
# assignment that breaks the graph, naming the thread and both states. Wrapping the
# descriptor, rather than routing the nine places through a checking function, means
# no state change can skip the check, and that off there is nothing to pay (a checking
# function would add a Python call to each of the four changes of every hand-off).

_RAW_STATE = GreenThread.__dict__["_state"]  # the slot's own member descriptor


def _checked_set_state(thread: GreenThread, new: str) -> None:
    try:
        old = _RAW_STATE.__get__(thread, GreenThread)
    except AttributeError:  # the first assignment, in __init__
        old = None
    if old is None:
        ok = new is NEW
    else:
        ok = new in LEGAL_TRANSITIONS[old]
    if not ok:
        name = getattr(thread, "name", "?")
        allowed = ", ".join(sorted(LEGAL_TRANSITIONS[old])) if old is not None else NEW
        raise StateTransitionError(
            f"green thread {name!r} (ident {getattr(thread, '_ident', '?')}) was moved from {old} to {new}, "
            f"which is not a legal change of state (from {old}: {allowed or 'none'}). "
            f"This is a bug in greensched, or in code that sets its private fields: "
            f"please report it with this traceback"
        )
    _RAW_STATE.__set__(thread, new)


def adopt_running(thread: GreenThread) -> None:
    """Make a NEW `GreenThread` stand for code that is already running: a hub's main
    thread (the one that created it), the only NEW → RUNNING change there is."""
    _RAW_STATE.__set__(thread, RUNNING)


if DEBUG:
    # setattr: a class attribute that replaces a slot's descriptor, which mypy rejects.
    setattr(GreenThread, "_state", property(_RAW_STATE.__get__, _checked_set_state))  # noqa: B010
