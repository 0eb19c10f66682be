"""Green `signal`: an exception raised by a signal handler reaches the main thread.

CPython runs Python signal handlers in the main OS thread, between two bytecodes of
whatever that thread runs. With OS threads that is always the main thread, so a
handler that raises (``sys.exit()`` in a SIGTERM handler, the usual way to stop a
server; a custom exception on SIGUSR1) interrupts the main thread. With green
threads the main OS thread may be running any green thread when the signal lands,
and the exception would end *that* one instead (silently, for ``SystemExit``),
while the main thread never hears of it.

The green ``signal.signal`` therefore installs each Python handler inside a small
wrapper (`RoutedHandler`) that calls it as it is and, if it raises while a green
thread other than the main one runs, throws the exception into the main green
thread (where it waits, or where it will resume) and lets the interrupted thread go
on as if nothing happened: what threaded code sees. A handler that raises while the
main green thread runs raises there, as before. A signal that lands while the hub
runs (every green thread waits, the hub polls) does not run the handler in the
hub, which must never block, and a handler may (a SIGTERM handler that flushes to
a socket): it runs in a green thread of its own, started at the hub's next pass,
with the main green thread's frame, and what it raises goes to the main green
thread too. Handlers installed before ``patch_all()`` are wrapped too.

``signal.getsignal`` and the return value of ``signal.signal`` give back the
handler the program installed, never the wrapper. greensched's own handlers
(preemption, the dump signal) are installed as they are: the preemption handler's
last act must be its tail call (see ``_core/_preempt.py``), which a wrapper frame
would break, and they never raise into user code.

**SIGALRM is shared.** The preemption timer is ``ITIMER_REAL``, whose signal is
SIGALRM, and a process has one such timer: a program's ``signal.alarm(5)`` would
replace the tick, its ``alarm(0)`` would stop preemption for good, and its SIGALRM
handler would replace the scheduler's. Under the patch the program gets a *virtual*
SIGALRM instead: ``signal.signal(SIGALRM, h)`` and ``getsignal`` keep the program's
handler aside (`VirtualAlarm`), and ``alarm``, ``setitimer(ITIMER_REAL, ...)`` and
``getitimer(ITIMER_REAL)`` run on a hub timer in the main OS thread. When it falls
due the hub calls the handler as a signal would (an exception it raises goes to the
main green thread); SIG_IGN ignores it, and SIG_DFL ends the process with SIGALRM,
as the kernel would. The real timer and SIGALRM stay the scheduler's; the other
interval timers (``ITIMER_VIRTUAL``, ``ITIMER_PROF``) are the real ones.

What differs from a real SIGALRM: it is delivered when the hub next runs its
timers, which with preemption on is within a tick even while the main thread
computes or sits in an unpatched blocking call; with preemption off
(``GREENSCHED_PREEMPT=0``), only when some green thread waits. A handler sees the
main green thread's frame. ``signal.pause()`` parks the green thread until one of
the program's handlers has run (the real one would return at every preemption
tick); ``sigwait`` and ``sigtimedwait`` still wait for real signals.
"""

from __future__ import annotations

import _thread
import os
import signal as _stdlib_signal
import threading as _stdlib_threading
from collections.abc import Callable
from time import monotonic
from types import FrameType
from typing import Any

from .._core._greenthread import GreenThread
from .._core._hub import Hub, existing_hub, get_hub
from .._core._stacks import thread_frame
from .._core._timers import TimerHandle
from ..sync import Event
from . import _signal_wakeup
from ._registry import patch_attr
from ._signal_wakeup import is_greensched_handler, write_wakeup_byte

__all__ = ["RoutedHandler", "VirtualAlarm", "signal", "getsignal", "alarm", "setitimer",
           "getitimer", "pause", "patch"]

__implements__ = ["signal", "getsignal", "alarm", "setitimer", "getitimer", "pause"]

_original_signal = _stdlib_signal.signal
_original_getsignal = _stdlib_signal.getsignal
_original_alarm = _stdlib_signal.alarm
_original_setitimer = _stdlib_signal.setitimer
_original_getitimer = _stdlib_signal.getitimer
_original_pause = _stdlib_signal.pause
_SIGALRM = _stdlib_signal.SIGALRM
_ITIMER_REAL = _stdlib_signal.ITIMER_REAL


class RoutedHandler:
    """Calls ``handler``; an exception it raises in a non-main green thread goes to main."""

    __slots__ = ("handler",)

    def __init__(self, handler: Callable[[int, FrameType | None], Any]) -> None:
        self.handler = handler

    def __call__(self, signum: int, frame: FrameType | None) -> Any:
        hub = get_hub()
        if hub.current is None:
            # Landed in the hub (every thread waits): the handler may block (a SIGTERM
            # handler that flushes to a socket), which the hub cannot. It runs in a
            # green thread of its own, started at the hub's next pass; the append and
            # the wake-up write are all this handler does (the handler rule).
            hub.call_soon_threadsafe(self._start_in_thread, signum)
            return None
        try:
            return self.handler(signum, frame)
        except BaseException as exc:
            current = hub.current
            if current is None or current is hub.main or not hub.throw(hub.main, exc):
                raise  # in main already (or main cannot take it): as CPython does
            return None  # main raises it where it waits; the interrupted thread goes on
        finally:
            _handled()

    def _start_in_thread(self, signum: int) -> None:
        """In the hub: run the handler in a new green thread (see `__call__`)."""
        GreenThread(self._run_in_thread, args=(signum,), name=f"signal handler ({signum})",
                    daemon=True).start()

    def _run_in_thread(self, signum: int) -> None:
        hub = get_hub()
        try:
            self.handler(signum, thread_frame(hub.main))
        except BaseException as exc:
            # As a handler that raises in the main thread would: main raises it where it
            # waits. If it cannot take one now (another is on its way), it is reported.
            if not hub.throw(hub.main, exc):
                raise
        finally:
            _handled()

    def __repr__(self) -> str:
        return f"<greensched routing {self.handler!r} to the main green thread>"


def _routed(handler: Any) -> Any:
    """``handler`` wrapped for routing, unless it needs none (SIG_DFL, ours, already routed)."""
    if not callable(handler) or isinstance(handler, RoutedHandler):
        return handler
    if is_greensched_handler(handler):
        return handler  # greensched's own: see the module docstring
    return RoutedHandler(handler)


def _unwrap(handler: Any) -> Any:
    return handler.handler if isinstance(handler, RoutedHandler) else handler


def signal(signalnum: int, handler: Any) -> Any:  # keywords allowed, as the stdlib's
    """`signal.signal`, with the handler's exceptions raised in the main green thread."""
    if signalnum == _SIGALRM and _alarm is not None and not is_greensched_handler(handler):
        return _alarm.set_handler(handler)
    return _unwrap(_original_signal(signalnum, _routed(handler)))


def getsignal(signalnum: int) -> Any:
    """`signal.getsignal`: the handler the program installed (never greensched's wrapper)."""
    if signalnum == _SIGALRM and _alarm is not None:
        return _alarm.handler
    return _unwrap(_original_getsignal(signalnum))


# -- the virtual SIGALRM ---------------------------------------------------------------------


class VirtualAlarm:
    """The program's SIGALRM handler and ``ITIMER_REAL``, kept beside the scheduler's.

    One per process, made by `patch` in the main OS thread, whose hub runs the timer.
    Its state (handler, deadline, interval) changes only in that OS thread's hub or
    under ``_lock`` from other OS threads, which hand the timer itself to the hub.
    """

    def __init__(self, hub: Hub, handler: Any) -> None:
        self._hub = hub
        # A real lock (`_thread`'s is never made green): taken from any OS thread, briefly.
        self._lock = _thread.allocate_lock()
        self.handler: Any = handler
        self._deadline: float | None = None
        self._interval = 0.0
        self._timer: TimerHandle | None = None
        self._generation = 0  # which arming a hub timer belongs to

    def set_handler(self, handler: Any) -> Any:
        if not (callable(handler) or handler in (_stdlib_signal.SIG_DFL, _stdlib_signal.SIG_IGN)):
            raise TypeError("signal handler must be signal.SIG_IGN, signal.SIG_DFL, or a callable object")
        if existing_hub() is not self._hub:  # as the real signal.signal refuses
            raise ValueError("signal only works in main thread of the main interpreter")
        old, self.handler = self.handler, handler
        return old

    def get(self) -> tuple[float, float]:
        """``(seconds left, interval)``, as ``getitimer(ITIMER_REAL)`` gives them."""
        with self._lock:
            if self._deadline is None:
                return (0.0, 0.0)
            return (max(self._deadline - monotonic(), 1e-6), self._interval)

    def set(self, seconds: float, interval: float) -> tuple[float, float]:
        """Arm (``seconds > 0``) or disarm (0) the timer; the previous ``get()``."""
        if seconds < 0 or interval < 0:
            raise _stdlib_signal.ItimerError(22, "Invalid argument")
        old = self.get()
        with self._lock:
            self._generation += 1
            self._deadline = monotonic() + seconds if seconds > 0 else None
            self._interval = interval if seconds > 0 else 0.0
            generation = self._generation
        hub = self._hub
        if get_hub() is hub:
            self._arm(generation)
        else:  # another OS thread: the hub schedules it (a hub is not thread-safe)
            hub.call_soon_threadsafe(self._arm, generation)
        return old

    def _arm(self, generation: int) -> None:
        """In the hub's OS thread: (re)place the hub timer for arming ``generation``."""
        if self._timer is not None:
            self._hub.cancel_timer(self._timer)
            self._timer = None
        with self._lock:
            if generation != self._generation or self._deadline is None:
                return
            delay = max(self._deadline - monotonic(), 0.0)
        self._timer = self._hub.call_later(delay, self._fire, generation)

    def _fire(self, generation: int) -> None:
        """In the hub: the alarm is due. Re-arm an interval, then act as the signal would."""
        self._timer = None
        with self._lock:
            if generation != self._generation or self._deadline is None:
                return
            if self._interval > 0:
                self._deadline += self._interval
            else:
                self._deadline = None
        if self._deadline is not None:
            self._arm(generation)
        handler = self.handler
        if handler == _stdlib_signal.SIG_IGN:
            return
        if handler == _stdlib_signal.SIG_DFL:  # the default action: end the process
            _original_signal(_SIGALRM, _stdlib_signal.SIG_DFL)
            os.kill(os.getpid(), _SIGALRM)
            return
        write_wakeup_byte(bytes([_SIGALRM]))  # as the C handler does, before the Python one
        try:
            handler(_SIGALRM, thread_frame(self._hub.main))  # raises into main, via the hub
        finally:
            _handled()


#: The process's virtual SIGALRM, once `patch` ran in the main OS thread.
_alarm: VirtualAlarm | None = None


#: Set when one of the program's handlers has run: wakes the green threads in `pause`.
_pause_over: Event | None = None


def _handled() -> None:
    """A handler of the program's ran (a real signal's or the virtual SIGALRM's)."""
    global _pause_over
    event = _pause_over
    if event is not None:
        _pause_over = None
        event.set()


def pause() -> None:
    """`signal.pause`: park this green thread until one of the program's handlers has run.

    The real one waits for any signal the OS thread catches, and the preemption tick
    is one: it would return at once, and the virtual SIGALRM never ends it. An
    exception the handler raises is raised here when this is the main green thread.
    """
    global _pause_over
    if _alarm is None:
        return _original_pause()
    event = _pause_over
    if event is None:
        event = _pause_over = Event()
    event.wait()
    return None


def alarm(seconds: int) -> int:
    """`signal.alarm`, on the virtual SIGALRM: the seconds left of the previous alarm."""
    if _alarm is None:
        return _original_alarm(seconds)
    if not isinstance(seconds, int):
        raise TypeError(f"'{type(seconds).__name__}' object cannot be interpreted as an integer")
    left, _ = _alarm.set(float(seconds), 0.0)
    whole = int(left)
    # As glibc's alarm() rounds: half a second or more counts as a second, and an
    # alarm still pending never reports 0.
    return whole + 1 if left - whole >= 0.5 or (whole == 0 and left > 0) else whole


def setitimer(which: int, seconds: float, interval: float = 0.0) -> tuple[float, float]:
    """`signal.setitimer`; ``ITIMER_REAL`` is the virtual SIGALRM's, the others are real."""
    if which != _ITIMER_REAL or _alarm is None:
        return _original_setitimer(which, seconds, interval)
    return _alarm.set(float(seconds), float(interval))


def getitimer(which: int) -> tuple[float, float]:
    """`signal.getitimer`; ``ITIMER_REAL`` is the virtual SIGALRM's, the others are real."""
    if which != _ITIMER_REAL or _alarm is None:
        return _original_getitimer(which)
    return _alarm.get()


signal.__doc__ = (signal.__doc__ or "") + "\n\n" + (_original_signal.__doc__ or "")
getsignal.__doc__ = (getsignal.__doc__ or "") + "\n\n" + (_original_getsignal.__doc__ or "")


def patch() -> None:
    """Install the green `signal`/`getsignal`, wrap the Python handlers already installed,
    and, in the main OS thread, give the program its virtual SIGALRM."""
    global _alarm
    if _alarm is None and _stdlib_threading.current_thread() is _stdlib_threading.main_thread():
        current = _unwrap(_original_getsignal(_SIGALRM))
        # The program's SIGALRM so far: what it installed, unless that is greensched's own.
        _alarm = VirtualAlarm(get_hub(), _stdlib_signal.SIG_DFL if is_greensched_handler(current)
                              or current is None else current)
    for name in __implements__:
        patch_attr(_stdlib_signal, name, globals()[name])
    _signal_wakeup.patch()
    for signum in _stdlib_signal.valid_signals():
        try:
            current = _original_getsignal(signum)
            routed = _routed(current)
            if routed is not current:
                _original_signal(signum, routed)
        except (OSError, ValueError, RuntimeError):
            continue  # uncatchable (SIGKILL...), or patch_all() called outside the main thread
