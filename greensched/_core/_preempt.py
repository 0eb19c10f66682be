"""Preemption: a timer asks for a switch; the switch happens only at a safe point.

With `_signals` (which owns the signal numbers and the real handler table) and
`_ticktimer` (which arms the timer), this is the only module that touches
`signal`. A timer (SIGALRM) is armed for the next moment a switch could be due.
The SIGALRM handler only *decides*; the switch itself runs from a second handler,
on SIGRTMAX, the highest-numbered signal, so that every other pending handler runs
first.

When a thread is asked to yield
-------------------------------
* it has run a whole slice (10 ms by default) since the hub resumed it, and another
  thread is ready; or
* it has run the *granularity* (1 ms by default, never more than the slice) and a
  sleeper's timer has fallen due, or an fd a parked thread waits on has become
  ready (wake-up preemption, as Linux CFS does for a woken task). Readiness comes
  from polling the netpoller's own fd with a zero timeout, which consumes nothing
  (`Netpoller.ready_hint`; Go's sysmon polls its netpoller likewise while
  goroutines run). The wake-up pipe counts: another OS thread handed work in.

When the timer is armed: see `_ticktimer`, which holds the timer and the rules
(a slice's end, the next deadline, fds waited on; never when nobody else could run).

Kinds of safe point
-------------------
A green thread changes hands only at a safe point. Synchronous ones, where the
thread itself calls into the hub: it *parks* (a lock, a queue, an event, a sleep, an
fd wait, a join), it *yields* (``sleep(0)``), or it leaves the outermost
`no_preempt` with a request pending. Asynchronous ones, where the SIGALRM handler
finds the thread; the handler is told the innermost Python frame, and
`_safepoints.classify` reads its current instruction:

1. **A loop's back-edge or a function's entry** (JUMP_BACKWARD, RESUME...): the eval
   loop checked between two bytecodes. The most common landing of a CPU-bound loop.
2. **A call whose callee holds no per-object state**, named in the bytecode that
   loaded it: ``time.monotonic()``, a ``hashlib`` update, and the unpatched blocking
   calls that retry their syscall after EINTR (PEP 475): ``time.sleep``,
   ``lock.acquire``, ``select``, socket calls. Whether the callee has returned or is
   still blocked in its C code, it holds nothing but its C stack, which the greenlet
   saves: the others run and the call resumes later with its remaining timeout.
3. **A place the handler has seen the same thread stuck in for a whole slice**
   (``max(slice, 10 ms)``) when the bytecode did not name the callee: a blocking call
   we could not identify. Switching there beats freezing everyone.

Anywhere else the request is **retried at the next check, never dropped**. Not safe:
a call into a buffered file (``print``, ``write``, ``flush``...), whose C code checks
for signals after each raw write *while holding the buffer's lock*; switching there
and letting another thread print to the same stream raises ``RuntimeError:
reentrant call`` (150,000 times a second in a two-thread print loop at a 5 ms slice,
when it was tried). The retry is the handler's last act: it queues a pending call
(``Py_AddPendingCall``) whose C function re-trips SIGALRM. The pending call runs at
the handler's own next check, *after* that check has run the signal handlers, so
the trip survives the handler and fires at the next check of the interrupted code,
normally just past the call, a few bytecodes later. A print loop is thus switched at
its back-edge. At most 64 retries follow one tick; then the next tick tries afresh.

Never preempted
---------------
* the hub (it is the scheduler; it is never "a thread that used its slice");
* a thread that has not used up its slice, or with nobody else to run;
* code under `no_preempt` (the request is remembered and honoured on exit);
* greensched's own code (its bookkeeping is written to run to completion; a request
  that lands there is retried at the next check);
* a thread while it is importing a module: import locks are keyed by OS thread id,
  which all green threads share, so another thread importing the same module would
  re-enter the lock and see a half-initialised module. The request waits until the
  import is done (a long-running module body is not preempted: avoid them);
* a thread inside a long C call that never checks for signals (a huge regex, a big
  hash update, numpy): CPython runs no Python code until it returns.

The signal handler rule
-----------------------
Every handler here (SIGALRM `_on_tick`, SIGRTMAX `_on_switch`, SIGINT `_on_sigint`,
the dump signal) runs at *any* bytecode of the main OS thread: inside the hub's
loop, inside a green thread's `park`, half-way through `TimerHeap.cancel`
rebuilding the heap. So a handler **reads, or sets flags; it never changes a
structure that thread or hub code mutates**, and never calls a method that does
(``TimerHeap.next_deadline`` pops cancelled entries: calling it from here once
made the live count negative and skipped timers). What must change is left to
the hub (`take_sigint` at the top of its pass) or to a safe point. The only
mutations allowed are:

* the preemptor's own handler-side fields (`_want_at`, `_stuck_*`, `_retries`,
  counters, `sigint_pending`, `_deferred_run`), which thread code only reads, and the
  tick timer's `expiry` hint, which thread code sets before it arms the timer
  (see `TickTimer.arm`);
* syscalls: ``setitimer``, ``interrupt_main``, ``Py_AddPendingCall``, and the
  wake-up pipe's ``write`` (a byte, as the self-pipe trick has it);
* the switch itself (`_do_switch`, ``hub.yield_now``) and a held-back exception
  (`_raise_held_back`), and only once ``atomic_reason(frame)`` says no greensched
  frame is on the interrupted stack: then no hub structure is half-updated.

Reads must survive a half-made update, and may be a tick out of date: each is a
hint for the next decision, never a fact the hub relies on. The reads, line by
line, are listed in tests/core/test_handler_rule.py, which plays a tick at every
instruction of greensched's code and checks that nothing changed.

Things that don't work, and why we don't do them
------------------------------------------------
* Switching in the SIGALRM handler itself: pending handlers run in ascending signal
  order in one pass, so SIGTERM (15), SIGCHLD (17), SIGWINCH (28) would wait until
  the preempted thread runs again. ``interrupt_main(SIGRTMAX)`` instead makes the
  handler's own next check run a nested pass over every pending handler, in order,
  with ours last.
* Re-tripping SIGALRM directly from the handler (``raise_signal``, ``interrupt_main``):
  the handler's own bytecodes check for signals, so it re-enters at once.
* Switching from a Python pending call: CPython runs one pending call at a time,
  and a switched-away call would hold that guard until its thread resumed,
  blocking every other preemption meanwhile. Our pending call is pure C.
* ``sys.settrace`` to stop at the next opcode: switching greenlets from a trace
  function leaves tracing suppressed elsewhere on 3.11, and debuggers and coverage
  own ``settrace``.
* Treating every CALL landing as unsafe: a loop dominated by C calls (printing,
  hashing, polling ``time.monotonic()``) then lands on a CALL at every check and is
  never preempted.
* Ticking while idle: every tick interrupts blocking syscalls with EINTR, and some C
  extensions do not retry. The timer runs only while there is competition, stops
  at the first tick that finds the hub asleep in its poll (that tick interrupts only
  the hub's own ``epoll_wait``, which retries), and stops at exit.
* The timer's own schedule (an interval timer, arming per resume, stopping it at
  each sleep of the hub): see `_ticktimer`.

Only the main OS thread runs Python signal handlers, so only its hub is preemptive.
SIGALRM belongs to greensched while preemption is on (``signal.alarm`` and
pytest-timeout's signal method conflict with it). A forked child does not inherit
the timer; the hub re-arms it there on its next pass.
"""

from __future__ import annotations

import _thread
import os
import signal
import time
from types import CodeType, FrameType
from typing import Any

from ._pending import make_pending_retrip
from ._safepoints import (
    CLEAN,
    IMPORT,
    RUNTIME,
    SAFE_CALL,
    UNSAFE,
    atomic_reason,
    classify,
    exception_escapes,
    mark_root,
)
from ._settings import (
    DEFAULT_SLICE_MS,
    MIN_SLICE_MS,
    check_env_at_import,
    check_granularity_ms,
    check_slice_ms,
    read_env_config,
    read_env_granularity,
)
from ._signals import OUR_HANDLER_OWNERS, SWITCH_SIGNAL, signal_signal
from ._ticktimer import HANDLER_CODES as _TIMER_CODES, NEVER, PreemptedHub, TickTimer

__all__ = [
    "Preemptor", "PreemptedHub", "TickTimer", "no_preempt", "NoPreempt", "NEVER", "read_env_config",
    "mark_root", "check_slice_ms", "check_granularity_ms", "DEFAULT_SLICE_MS", "MIN_SLICE_MS",
]

#: A C call must be stuck at least this long before it is switched away from.
_STUCK_MIN_S = 0.010
#: Back-to-back retries allowed before waiting for the next tick instead.
_MAX_RETRIES = 64
#: A held-back exception is raised anyway if no better place comes within this time.
_HOLD_BACK_MAX_S = 1.0

_SWITCH = "switch"
_RETRY = "retry"


# -- retrying at the next check: see _pending ---------------------------------------------------

_add_pending, _TRIP = make_pending_retrip()


# -- the preemptor --------------------------------------------------------------------------


class Preemptor:
    """The preemption handlers of one hub (the main OS thread's), and its tick timer."""

    def __init__(self, hub: PreemptedHub) -> None:
        self._hub = hub
        #: When ticks come (`_ticktimer`); the hub calls it directly.
        self.timer = TickTimer(hub, self._ensure_installed)
        enabled, slice_ms = read_env_config()
        self.timer.enabled = enabled
        self._granularity_ms = read_env_granularity()
        self._set_slice(slice_ms)
        self._installed = False
        #: hub.switches of the run in which a request found the thread under no_preempt
        #: (its section's end honours it; a later run's section must not).
        self._deferred_run = -1
        self._want_at = -1  # hub.switches when the current request was made
        # The thread last seen in an ambiguous spot (its ident), the spot (the frame's
        # id, code and instruction) and since when. Identities, not the objects: a
        # frame kept here kept its locals alive after the thread had moved on, for as
        # long as no tick came (a socket in a returned spawn() call's arguments stayed
        # open, and its peer waited out its timeout). A freed frame's id may be reused
        # by a later frame of the same code at the same instruction: then "stuck" is
        # concluded from two visits to one place, which only brings forward a switch
        # the rule would make a slice later anyway.
        self._stuck_thread = -1
        self._stuck_frame = -1
        self._stuck_code: CodeType | None = None
        self._stuck_lasti = -1
        self._stuck_since = 0.0
        self._retries = 0  # retries since the last timer tick
        self._retry_pending = False
        self._switch_requested = False
        self._deciding = False
        self._switch_escapes = False
        #: Ctrl-C arrived while main could not take it: the hub delivers it (`take_sigint`).
        self.sigint_pending = False
        #: Test-only (`request_switch`): switch at the next safe point, whatever the slice.
        self._forced = False
        #: Test-only: code objects (a fuzzer's trace function) never to switch from.
        self.no_switch_codes: frozenset[Any] = frozenset()
        # counters for stats()
        self.ticks = 0
        self.requests = 0
        self.preemptions = 0
        self.stuck_preemptions = 0
        self.call_preemptions = 0
        self.retried = 0
        self.wakeup_preemptions = 0  # requests for a sleeper that fell due or an fd that became ready
        self.deferred_requests = 0  # requests that found the thread under no_preempt
        os.register_at_fork(after_in_child=self._after_fork_in_child)

    # -- configuration --------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self.timer.enabled

    @property
    def slice(self) -> float:
        """Seconds a thread runs before it yields to another ready one."""
        return self.timer.slice

    @property
    def granularity(self) -> float:
        """Seconds a thread runs before a due sleeper or a ready fd preempts it (<= slice)."""
        return self.timer.granularity

    def configure(self, enabled: bool | None = None, slice_ms: float | None = None,
                  granularity_ms: float | None = None) -> None:
        """Change the settings (each checked first: a bad one changes nothing)."""
        slice_ms = None if slice_ms is None else check_slice_ms(slice_ms)
        granularity_ms = None if granularity_ms is None else check_granularity_ms(granularity_ms)
        if granularity_ms is not None:
            self._granularity_ms = granularity_ms
        self._set_slice(self._slice_ms if slice_ms is None else slice_ms)
        if enabled is not None:
            self.timer.enabled = bool(enabled)
        if self.timer.expiry != NEVER:
            self.timer.disarm()
        if self._hub.current is not None:
            self.timer.maybe_arm()  # the caller may compute on: tick for it with the new settings

    def _set_slice(self, slice_ms: float) -> None:
        self._slice_ms = slice_ms
        self.timer.slice = slice_ms / 1000.0
        self.timer.granularity = min(self._granularity_ms / 1000.0, self.timer.slice)
        #: A C call must be stuck this long before it is switched away from.
        self._stuck_min = max(self.timer.slice, _STUCK_MIN_S)

    def _ensure_installed(self) -> None:
        if not self._installed:
            self._install()

    def _install(self) -> None:
        signal_signal(signal.SIGALRM, self._on_tick)
        if SWITCH_SIGNAL is not None:
            signal_signal(SWITCH_SIGNAL, self._on_switch)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal_signal(signal.SIGINT, self._on_sigint)
        self._installed = True

    def _after_fork_in_child(self) -> None:
        self.timer.after_fork_in_child()
        self._want_at = -1
        self._stuck_thread = -1

    def shutdown(self) -> None:
        """At interpreter exit: stop the timer so no tick outlives our handler."""
        self.timer.enabled = False
        if self.timer.expiry != NEVER:
            self.timer.disarm()

    # -- no_preempt ------------------------------------------------------------------------

    def enter_critical(self) -> None:
        thread = self._hub.current
        if thread is not None:  # the hub's own callbacks are never preempted anyway
            thread._no_preempt += 1

    def exit_critical(self) -> None:
        hub = self._hub
        thread = hub.current
        if thread is None:
            return
        thread._no_preempt -= 1
        if thread._no_preempt == 0 and self._deferred_run == hub.switches:
            # Honour the request that arrived inside the section: it was made because
            # another thread was ready, a timer was due or an fd ready.
            self._deferred_run = -1
            self.preemptions += 1
            hub.yield_now()

    # -- the handlers ------------------------------------------------------------------------

    def _on_tick(self, signum: int, frame: FrameType | None) -> Any:
        """SIGALRM: decide whether to switch (in `_decide`); the switch runs in `_on_switch`.

        A retry must be this function's very last call (``return _add_pending(...)``):
        the pending call re-trips SIGALRM at the next check, and any check still to
        come inside this handler would run it here, nested, instead of after the C
        call that was interrupted. A tick that arrives while `_decide` runs (it may
        read bytecode for a while) is dropped; the request it would make stays
        pending and the next tick sees it.
        """
        if self._deciding:
            return None  # the outer call arms the next tick (or switches) when it is done
        retry, self._retry_pending = self._retry_pending, False
        now = time.monotonic()
        timer = self.timer
        if not (retry and now < timer.expiry):
            timer.fired(now)  # (signals coalesce: a retry's trip may be the timer's too)
        self._deciding = True
        try:
            action = self._decide(frame, retry)
        finally:
            self._deciding = False
        if action is _SWITCH:
            # The next thread's tick: a slice away for now (its backstop ticks on); the
            # hub and the threads it resumes bring it forward if they need it sooner.
            # Leaving the backstop alone instead cost a useless tick per switch.
            timer.arm(now + timer.slice, now)
            return self._switch_now()
        if action is _RETRY:
            self._retry_pending = True
            if _add_pending is None:
                return timer.arm(now + timer.granularity / 8, now)
            return _add_pending(_TRIP, signum)  # must stay the last call; see the docstring
        current = self._hub.current
        # Look again soon if a request stands (not under no_preempt, whose end honours
        # it) or an exception is held back.
        recheck = current is not None and (
            current._held_exc is not None
            or (self._want_at == self._hub.switches and not current._no_preempt))
        return timer.arm_next(now, recheck)

    def _decide(self, frame: FrameType | None, retry: bool = False) -> str | None:
        """_SWITCH, _RETRY (at the next check) or None (wait for the next tick).

        ``retry``: this is a retry's trip, not a tick (the retry budget goes on).
        """
        hub = self._hub
        thread = hub.current
        if thread is None or frame is None or frame.f_code in _HANDLER_CODES:
            return None  # the hub is running or asleep, or a tick arrived inside our own handler
        self.ticks += 1
        if not retry:
            self._retries = 0  # a timer tick: a fresh budget of retries
        if thread._held_exc is not None:
            self._raise_held_back(thread, frame)
        if self._want_at != hub.switches and self._forced:
            self._forced = False  # request_switch (tests): whatever the slice says
            self._want_at = hub.switches
            self.requests += 1
        elif self._want_at != hub.switches:  # no request yet for this run of the thread
            now = time.monotonic()
            ran = now - hub.resumed_at
            if ran < self.granularity:
                return None
            if ran >= self.slice and hub.others_ready():
                pass  # its slice is used up and another thread waits for its turn
            elif self._timer_due(now) or self._fds_ready(ran):
                self.wakeup_preemptions += 1  # a sleeper or a reader waits: wake-up preemption
            else:
                return None  # nobody else could run yet: look again at the next tick
            self._want_at = hub.switches
            self.requests += 1
        if thread._no_preempt:
            if self._deferred_run != hub.switches:
                self.deferred_requests += 1
                self._deferred_run = hub.switches
            return None
        # A test's trace function (request_switch) is never switched from: on 3.12+ that
        # would leave tracing off in the other greenlets. Retry once it has returned.
        landing = UNSAFE if frame.f_code in self.no_switch_codes else classify(frame)
        if landing is CLEAN or landing is SAFE_CALL:
            if thread._ident == self._stuck_thread:
                self._stuck_thread = -1
            reason = atomic_reason(frame)
            if reason is None:
                if landing is SAFE_CALL:
                    self.call_preemptions += 1
                self._switch_escapes = exception_escapes(frame)
                return _SWITCH
            if reason is IMPORT:
                return None  # an import may take a while: look again at the next tick
        elif landing is UNSAFE:
            pass  # a buffered file's C code may hold its lock: wait for the call to return
        elif (thread._ident == self._stuck_thread and id(frame) == self._stuck_frame
              and frame.f_code is self._stuck_code and frame.f_lasti == self._stuck_lasti):
            # Unknown again at the same place: stuck in one C call for long enough?
            if time.monotonic() - self._stuck_since >= self._stuck_min and atomic_reason(frame) is None:
                self.stuck_preemptions += 1
                self._switch_escapes = exception_escapes(frame)
                return _SWITCH
        else:
            self._stuck_thread = thread._ident
            self._stuck_frame = id(frame)
            self._stuck_code = frame.f_code
            self._stuck_lasti = frame.f_lasti
            self._stuck_since = time.monotonic()
        # Not safe here: retry at the next check, after the current C call returns.
        self._retries += 1
        self.retried += 1
        if self._retries > _MAX_RETRIES:
            return None  # a long straight run of C calls: wait for the next tick
        return _RETRY

    def request_switch(self) -> None:
        """Test-only (the schedule fuzzer): preempt at the next safe point, whatever the slice.

        Trips SIGALRM through a pending call, so the real handler runs at the next
        check of the calling code and decides as at any tick: switch at a safe
        point, retry elsewhere. The trip fires at the caller's own next check, so
        call it last (a trace function: then ``return`` its tracer).
        """
        if _add_pending is None:
            raise RuntimeError("request_switch needs ctypes.pythonapi (CPython)")
        if not self._installed:
            self._install()
        self._forced = True
        _add_pending(_TRIP, signal.SIGALRM)

    def _fds_ready(self, ran: float) -> bool:
        """Has an fd a parked thread waits on become ready (the hub would wake it)?

        Asks the netpoller's own fd, without consuming anything (`Netpoller.ready_hint`).
        A netpoller that cannot tell gets looked at when the slice ends, as before
        there was a hint. The wake-up pipe counts too: another OS thread handed work in.
        """
        hint = self._hub._netpoll.ready_hint()
        if hint is None:
            return ran >= self.slice and bool(self._hub._netpoll.waiting)
        return hint

    def _timer_due(self, now: float) -> bool:
        # peek_deadline, never next_deadline: the latter pops cancelled entries, and
        # this runs at any bytecode, e.g. inside TimerHeap.cancel rebuilding the heap.
        hub = self._hub
        deadline = hub._timers.peek_deadline()
        if deadline is None:
            return False
        if hub._jumper is not None:
            now = hub._now()  # timer deadlines are on the hub's clock; `now` is real time
        return deadline <= now

    def _switch_now(self) -> Any:
        self._switch_requested = True
        if SWITCH_SIGNAL is None:
            return self._do_switch()
        # Trips SIGRTMAX; this handler's own next check runs a nested pass over every
        # pending handler in signal order, SIGRTMAX last, so all the others run first.
        # typeshed wants a signal.Signals; the C function takes any signal number (an int).
        return _thread.interrupt_main(SWITCH_SIGNAL)  # type: ignore[arg-type]

    def _on_switch(self, signum: int, frame: FrameType | None) -> None:
        """SIGRTMAX: perform the switch `_on_tick` asked for (ignored otherwise)."""
        if self._switch_requested:
            self._do_switch()

    def _do_switch(self) -> None:
        self._switch_requested = False
        hub = self._hub
        thread = hub.current
        if thread is None:
            return
        self.preemptions += 1
        escapes = self._switch_escapes
        try:
            hub.yield_now()
        except BaseException as exc:  # a kill, a Timeout, a Ctrl-C thrown in while we were out
            if not escapes:
                raise
            # Raised here it would skip the try/with around this loop (see _safepoints):
            # hold it back until the thread stands where it will be handled, or parks.
            thread._held_exc = (exc, time.monotonic())

    def _raise_held_back(self, thread: Any, frame: FrameType) -> None:
        """Raise a held-back exception where it will be handled, or after a second anyway."""
        exc, since = thread._held_exc
        landing = classify(frame)
        good_place = (landing is CLEAN or landing is SAFE_CALL) and not exception_escapes(frame)
        if atomic_reason(frame) is None and (good_place or time.monotonic() - since > _HOLD_BACK_MAX_S):
            thread._held_exc = None
            raise exc

    def _on_sigint(self, signum: int, frame: FrameType | None) -> Any:
        """Ctrl-C goes to the main green thread, wherever it is parked.

        Raised here only when main runs its own code. Anywhere else this handler
        touches nothing of the hub's (main's state and the run queue may be half-way
        through an update by the code it interrupted): it sets `sigint_pending`,
        writes the hub's wake-up pipe (one ``write`` syscall, so a poll in progress
        or the next one returns at once) and asks for a switch; the hub raises it in
        main at the top of its next pass (`take_sigint`).
        """
        hub = self._hub
        current = hub.current
        if current is hub.main and frame is not None:
            if atomic_reason(frame) is not RUNTIME:
                raise KeyboardInterrupt
            if _add_pending is not None:
                # Main is inside greensched's bookkeeping: try again at the next check,
                # after that call has returned (or main has parked: then the hub does it).
                return _add_pending(_TRIP, signum)  # must stay the last call
        self.sigint_pending = True
        hub._netpoll.wakeup()
        if current is not None:
            self._want_at = hub.switches  # a thread runs: switch it out at a safe point ...
            now = time.monotonic()
            timer = self.timer
            if timer.enabled and not now < timer.expiry <= now + timer.granularity:
                return timer.arm(now, now)  # ... at the next tick, which comes at once
        return None

    def take_sigint(self) -> bool:
        """In the hub: True once for each Ctrl-C `_on_sigint` left for it to deliver."""
        if not self.sigint_pending:
            return False
        self.sigint_pending = False
        return True


OUR_HANDLER_OWNERS.add(Preemptor)

#: Frames of these functions are the handlers themselves: a tick landing there is ignored.
_HANDLER_CODES = frozenset(
    f.__code__
    for f in (Preemptor._on_tick, Preemptor._decide, Preemptor._raise_held_back,
              Preemptor._timer_due, Preemptor._fds_ready, Preemptor._switch_now,
              Preemptor._on_switch, Preemptor._do_switch, Preemptor._on_sigint)
) | _TIMER_CODES


# -- no_preempt -------------------------------------------------------------------------------


class NoPreempt:
    """Context manager: no preemption inside the block (see `no_preempt`)."""

    __slots__ = ("_preemptor",)

    def __init__(self, preemptor: Preemptor | None) -> None:
        self._preemptor = preemptor

    def __enter__(self) -> NoPreempt:
        if self._preemptor is not None:
            self._preemptor.enter_critical()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._preemptor is not None:
            self._preemptor.exit_critical()


def no_preempt(preemptor: Preemptor | None) -> NoPreempt:
    """A critical section: the current thread is not preempted until it ends.

    A request that arrives inside is honoured when the outermost section exits.
    The thread still switches if it blocks (parks) inside the section.
    """
    return NoPreempt(preemptor)


# A bad GREENSCHED_PREEMPT / GREENSCHED_SLICE_MS fails `import greensched`, as the docs
# say, not the first spawn much later (the hub reads them again when it is created).
check_env_at_import()
