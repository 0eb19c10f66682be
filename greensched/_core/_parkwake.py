"""Parking and waking: the hub's half of the park protocol, and how a thread leaves the CPU.

A mixin of `Hub` (`_hub.py`), kept apart so that the hub's module stays about the
run queue and THE loop. The protocol itself, and why a wait is named by a token
rather than by its thread, is `_parking`'s docstring. Here is what each call does
to the thread's state and to the hub's queues:

* `park` (after `prepare_park`): RUNNING -> PARKED, and a switch to the hub; the
  thread comes back when `unpark` or its timeout made it READY again.
* `unpark`: PARKED -> READY. Where the thread goes depends on who woke it: a
  running thread's wake-up is a *hand-off* (`_woken`: it runs next, see `_loop`);
  a timer's, a callback's or the netpoller's goes to the back of the run queue;
  one made while the hub sleeps in its poll (a signal handler) also writes the
  netpoller's wake-up pipe, or the poll would sleep on.
* `throw`: an exception (a kill, a `Timeout`) for a parked thread, which it
  raises where it waits; a thread that never ran ends without running.
* `yield_now` (``sleep(0)``, a preemption): RUNNING -> READY, behind everyone the
  pass's timers and I/O make ready.

Every path that makes a thread ready while another computes tells the preemption
timer (`_preempt`), so that the one computing gets a slice's end (wake-up
preemption). Nothing here is preempted: it is greensched's own code.
"""

from __future__ import annotations

import _thread
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any, Protocol

from ._debug import DEBUG
from ._errors import GreenThreadExit, HubError
from ._greenthread import _NOTHING, PARKED, READY, GreenThread
from ._parking import TIMED_OUT, ParkToken
from ._timers import TimerHeap

if TYPE_CHECKING:
    from ._netpoll import Netpoller
    from ._preempt import Preemptor

__all__ = ["Parking"]

# The OS-level original, captured before `patch_all()` can make `_thread` green.
_os_thread_ident = _thread.get_ident


class _Switch(Protocol):
    """The hub's greenlet, as seen from here: something to switch to."""

    def switch(self, *args: Any, **kwargs: Any) -> Any: ...


class Parking:
    """Park, unpark, throw, yield and sleep, for `Hub`, which supplies what is below."""

    os_thread_id: int
    current: GreenThread | None
    preemptor: Preemptor | None
    _glet: _Switch
    _ready: deque[GreenThread]
    _woken: deque[GreenThread]
    _yielded: list[GreenThread]
    _timers: TimerHeap
    _now: Callable[[], float]
    _netpoll: Netpoller
    _polling: bool

    def current_thread_for_park(self) -> GreenThread:
        """The running green thread, or a clear error when the hub itself is running."""
        thread = self.current
        if thread is None:
            raise HubError(
                "a blocking call was made inside the hub (from a timer or I/O callback); "
                "callbacks must not block: spawn a green thread to do the blocking work"
            )
        if _os_thread_ident() != self.os_thread_id:
            raise HubError(
                "a green primitive was used from an OS thread other than the one whose hub "
                "it belongs to; hand work across OS threads with call_soon_threadsafe()"
            )
        return thread

    def prepare_park(self) -> ParkToken:
        """A token for the running thread's next `park` (see `_parking`).

        Raises `HubError` where no green thread can park: in the hub itself, or on
        an OS thread this hub does not belong to.
        """
        thread = self.current
        if thread is None or _os_thread_ident() != self.os_thread_id:
            thread = self.current_thread_for_park()  # raises the error that fits
        # The number is taken here, not in `park`: a token names one park, even one
        # that returns at once, and no two tokens ever name the same park.
        seq = thread._park_seq = thread._park_seq + 1
        return (thread, seq)

    def park(self, token: ParkToken, reason: str, timeout: float | None = None) -> Any:
        """Suspend the thread of ``token`` (`prepare_park`'s) until `unpark` or timeout.

        Returns what `unpark` handed it, or `TIMED_OUT` when ``timeout`` seconds pass
        first; ``timeout <= 0`` returns it at once. ``reason`` is what the thread waits
        on, for stack dumps and the deadlock report. Exceptions thrown in with `throw`
        (a kill, a `Timeout`) are raised here.
        """
        thread: GreenThread = token[0]
        if DEBUG:
            self._check_token(token)
        if thread._held_exc is not None:
            self._raise_held(thread)
        if timeout is not None and timeout <= 0:
            return TIMED_OUT
        thread._state = PARKED
        thread._waiting_on = reason
        thread._resume_value = _NOTHING
        timer = None
        if timeout is not None:
            deadline = self._now() + timeout
            timer = self._timers.schedule(deadline, self._park_timed_out, token)
            if self.preemptor is not None:
                self.preemptor.timer.timer_set(deadline, parking=True)  # for whoever runs meanwhile
        try:
            self._glet.switch()
        finally:
            if timer is not None:
                self._timers.cancel(timer)
            thread._waiting_on = None
        value = thread._resume_value
        thread._resume_value = _NOTHING
        return value

    def _check_token(self, token: ParkToken) -> None:
        """Debug mode: ``token`` is the running thread's, for the park it is about to make."""
        thread: GreenThread = token[0]
        # Debug mode's own record (in the thread's __dict__, so that off costs nothing)
        # of the last token parked on: a token names one park, not every later one.
        used = thread.__dict__.get("_debug_parked_on")
        if thread is not self.current or thread._park_seq != token[1] or used == token[1]:
            raise HubError(
                f"park token {token!r} was used by {self.current!r} for a park it was not "
                f"made for (that thread's parks are at number {thread._park_seq}, and "
                f"number {used} was parked on): take a new token with prepare_park() for "
                f"every park, in the thread that parks"
            )
        thread.__dict__["_debug_parked_on"] = token[1]

    @staticmethod
    def withdraw(thread: GreenThread, exc: BaseException) -> None:
        """Forget ``exc`` if it is still on its way to ``thread`` (it no longer applies)."""
        if thread._held_exc is not None and thread._held_exc[0] is exc:
            thread._held_exc = None
        if thread._resume_exc is exc:
            thread._resume_exc = None

    @staticmethod
    def _raise_held(thread: GreenThread) -> None:
        """A kill or Timeout preemption held back (see _preempt) is raised at the next wait."""
        held = thread._held_exc
        thread._held_exc = None
        if held is not None:
            raise held[0]

    def _park_timed_out(self, token: ParkToken) -> None:
        self.unpark(token, TIMED_OUT)

    def unpark(self, token: ParkToken, value: Any = True, now: float | None = None) -> bool:
        """Make the thread of ``token`` ready if it is still in that park; hand it ``value``.

        Returns False, and does nothing, when the park is over (the token is stale):
        the thread timed out, was woken by someone else, or was thrown into.
        ``now``: the time, if the caller just read it (the loop, for a poll's batch).
        """
        thread, seq = token
        if thread._state is not PARKED or thread._park_seq != seq:
            return False
        thread._state = READY
        thread._ready_at = monotonic() if now is None else now
        thread._resume_value = value
        if self._polling:
            self._ready.append(thread)
            self._netpoll.wakeup()  # we are in a signal handler run inside select()
        elif self.current is not None:
            self._woken.append(thread)  # a hand-off from a running thread
            if self.preemptor is not None:
                self.preemptor.timer.thread_woken()  # which may compute on: it needs a slice's end
        else:
            self._ready.append(thread)
        return True

    def take_dropped_value(self, token: ParkToken) -> Any:
        """After ``park`` raised: the value its thread had been handed, or `TIMED_OUT`."""
        thread: GreenThread = token[0]
        value = thread._resume_value
        thread._resume_value = _NOTHING
        return TIMED_OUT if value is _NOTHING else value

    def throw(self, thread: GreenThread, exc: BaseException) -> bool:
        """Raise ``exc`` in ``thread`` where it waits; False if it was not delivered.

        Not delivered: the thread is running or done, or another exception is
        already on its way to it (a kill is never replaced, and replaces others).
        """
        state = thread._state
        if state is PARKED:
            thread._state = READY
            thread._ready_at = monotonic()
            thread._resume_exc = exc
            self._ready.append(thread)
            if self._polling:
                self._netpoll.wakeup()
            elif self.current is not None and self.preemptor is not None:
                self.preemptor.timer.thread_woken()
            return True
        if state is READY:
            if thread._glet is None:  # it never ran: end it without running it
                thread._killed = True
                thread._finish()
                return True
            pending = thread._resume_exc
            if pending is None or (isinstance(exc, GreenThreadExit)
                                   and not isinstance(pending, GreenThreadExit)):
                thread._resume_exc = exc  # a kill outranks anything pending, e.g. a Timeout
                return True
        return False

    def yield_now(self) -> None:
        """Go to the tail of the run queue and let the others run (``sleep(0)``).

        "The tail" is behind every thread that is ready now, including those whose
        timer or fd is due: a preempted CPU hog does not jump ahead of a sleeper.

        Only ever called on this OS thread's own hub (through `get_hub()`, or by
        the preemption handler): unlike `park`, it needs no OS-thread check.
        """
        thread = self.current
        if thread is None:
            thread = self.current_thread_for_park()  # raises: the hub cannot yield
        if thread._held_exc is not None:
            self._raise_held(thread)
        thread._state = READY  # `_resume` stamps `_ready_at` as the hub takes over
        self._yielded.append(thread)
        self._glet.switch()

    def sleep(self, seconds: float) -> None:
        """Park for ``seconds``; 0 yields. Negative or NaN: ValueError; not a number: TypeError."""
        try:
            positive = seconds > 0
        except TypeError:
            raise TypeError(
                f"sleep() takes a number of seconds, not {type(seconds).__name__}"
            ) from None
        if positive:
            self.park(self.prepare_park(), f"sleep({seconds!r})", seconds)
        elif seconds == 0:
            self.yield_now()
        elif seconds < 0:
            raise ValueError("sleep length must be non-negative")
        else:
            raise ValueError("sleep length must be a number of seconds, not NaN")
