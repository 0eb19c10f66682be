"""The hub: one per OS thread; its run queue, its timers, its netpoller, and THE loop.

The hub is a greenlet of its own. Green threads never switch to each other: a thread
that must wait *parks* (records what would wake it and switches to the hub), and
whoever wakes it *unparks* it (puts it on the run queue). `Hub._loop` is the one
place where green threads are resumed; reading it tells you the whole scheduling
policy:

1. run every thread that was ready when the pass began, in FIFO order; when one
   parks right after waking another (a hand-off through a lock, a queue, an
   event), the woken one runs next, in what is left of the waker's slice;
2. fire the timers that are due (timeouts, sleeps);
3. run callbacks other OS threads handed in through `call_soon_threadsafe`;
4. poll the netpoller: without waiting if anything is ready, else until the next
   timer is due; or, when nothing at all could ever wake a parked thread, declare a
   deadlock in the main green thread instead of sleeping forever;
5. queue the threads that yielded or were preempted during the pass behind all
   those that steps 2-4 woke: a CPU hog never jumps ahead of a sleeper.

Why hand-offs run next (Go's ``runnext``): without it, two threads passing items
back and forth beside a CPU hog wait a whole hog slice per hand-off (measured: 36
round trips a second instead of 120,000). Inheriting the slice keeps it fair: the
pair together gets one slice per pass, as one thread would, and a pair that keeps
handing off for a whole slice takes turns with everyone else again.

The preemption timer is a one-shot armed while threads run and others exist, for
the next moment a switch could be due (a slice's end, a sleeper's deadline); a tick
that finds the hub asleep in its poll arms no other, so an idle program gets at
most one tick (see `_preempt`).

Everything here runs either in the hub greenlet or in a green thread's own call to
`park`/`yield_now`/`unpark`; nothing here is preempted (`_preempt` never switches
while greensched's own code is on the interrupted part of the stack).
"""

from __future__ import annotations

import _thread
import atexit
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import Any

from greenlet import GreenletExit, getcurrent, greenlet

from . import _local, _preempt, _signals, _stacks
from ._clock import REAL_CLOCK, Clock
from ._errors import DeadlockError, HubError
from ._fdwait import FdWaits
from ._greenthread import (
    NEW,
    READY,
    RUNNING,
    GreenThread,
    adopt_running,
    report_exception,
)
from ._lifecycle import ClosedWithThread, Lifecycle
from ._netpoll import Netpoller
from ._parking import TIMED_OUT
from ._parkwake import Parking
from ._timers import TimerHandle, TimerHeap
from ._waitqueue import WaitQueue

__all__ = ["Hub", "get_hub", "existing_hub", "clock_now", "current_thread", "spawn", "sleep", "TIMED_OUT",
           "WAIT_WINDOW"]

# A green thread's user code begins below these frames: preemption may happen there.
_preempt.mark_root(GreenThread.run)
_preempt.mark_root(GreenThread._bootstrap)

#: Idle carrier greenlets kept for reuse; more than this are let go.
_MAX_IDLE_CARRIERS = 256
#: How many recent resumes the run-queue wait statistics cover (a power of two). The
#: ring is a list, not an `array`: storing into a list is one specialised bytecode,
#: while an array's item assignment parses its argument (measured: 280 instructions).
WAIT_WINDOW = 1024
_WAIT_MASK = WAIT_WINDOW - 1  # resume number n waited _waits[n & _WAIT_MASK] s

# The OS-level original, captured before `patch_all()` can make `_thread` green.
_os_thread_ident = _thread.get_ident

#: This OS thread's hub, created on first use. `_local`'s function itself, typed: no
#: wrapper, as it is called on every green sleep, spawn and socket wait.
get_hub: Callable[[], Hub] = _local.get_hub
#: This OS thread's hub if it has one, else None: never makes one.
existing_hub: Callable[[], Hub | None] = _local.existing_hub


def _new_hub() -> Hub:
    """`get_hub`'s factory: the OS thread's first hub, and what closes it with the thread."""
    hub = Hub()
    _local.slot.closer = ClosedWithThread(hub)
    return hub


_local.set_hub_factory(_new_hub)


def current_thread() -> GreenThread:
    """The green thread that is running now."""
    hub = get_hub()
    thread = hub.current
    if thread is None:
        raise HubError("current_thread() was called from inside the hub (a timer or I/O callback)")
    return thread


def spawn(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> GreenThread:
    """Start ``fn(*args, **kwargs)`` in a new green thread and return the thread."""
    thread = GreenThread(fn, args=args, kwargs=kwargs)
    get_hub().start_thread(thread)
    return thread


def sleep(seconds: float) -> None:
    """Park the current green thread for ``seconds``; ``sleep(0)`` just yields."""
    get_hub().sleep(seconds)


def clock_now() -> float:
    """The time on this OS thread's hub clock: what green-wait deadlines are measured in."""
    return get_hub()._now()


class Hub(Parking, FdWaits, Lifecycle):
    """Run queue, timers and netpoller of one OS thread; see the module docstring.

    Its parts in other modules: parking and waking (`_parkwake.Parking`), fd waits
    (`_fdwait.FdWaits`), exit and fork (`_lifecycle.Lifecycle`).
    """

    _glet: greenlet  # the hub's own greenlet: what `Parking` switches to

    def __init__(self) -> None:
        self.os_thread_id = _os_thread_ident()
        self._ready: deque[GreenThread] = deque()
        #: Threads that yielded or were preempted in this pass; they queue up behind
        #: whatever the pass's timers and I/O make ready (see `_loop`).
        self._yielded: list[GreenThread] = []
        #: Threads a running thread woke (hand-offs), in order: the first runs as soon
        #: as the waker parks, ahead of the rest of the pass (see `_loop`). A deque, not
        #: a slot: a signal handler may wake a thread in the middle of `unpark`, and
        #: appends to a deque never lose one another.
        self._woken: deque[GreenThread] = deque()
        self._timers = TimerHeap()
        #: The clock deadlines of green waits are read by (see _clock); `_now` is its
        #: bound `now`, `_jumper` the clock itself unless it is the real one.
        self.clock: Clock = REAL_CLOCK
        self._now = REAL_CLOCK.now
        self._jumper: Clock | None = None
        self._netpoll = Netpoller()
        self._calls: deque[tuple[Callable[[Any], None], Any]] = deque()
        self._external = 0
        self._polling = False
        self._carriers: list[greenlet] = []
        self._glet = greenlet(self._loop)
        #: Threads started and not yet finished, by ident (the main thread included).
        self._threads: dict[int, GreenThread] = {}
        self._all_done = WaitQueue(self, "run()")
        #: Number of times the hub resumed a green thread, and when it last did.
        self.switches = 0
        self.resumed_at = monotonic()  # main has run since the hub was made
        #: For stats(): threads started, how long recent resumes waited on the run
        #: queue (a ring indexed by switch number), and the hub's sleeps in poll.
        self.spawned = 0
        self._waits = [0.0] * WAIT_WINDOW
        self.polls = 0
        self.poll_seconds = 0.0
        is_main = self.os_thread_id == _main_os_thread_id()
        main = GreenThread(name="MainThread" if is_main else f"Main-{self.os_thread_id}")
        main._hub = self
        main._glet = getcurrent()
        adopt_running(main)
        self.main = main
        #: The green thread running now; None while the hub itself runs.
        self.current: GreenThread | None = main
        self._threads[main._ident] = main
        #: Preemption works only where Python runs signal handlers: the main OS thread.
        self.preemptor: _preempt.Preemptor | None = _preempt.Preemptor(self) if is_main else None
        if is_main:
            atexit.register(self._at_exit)
        self._fork_orphans: list[Any] = []
        #: A DeadlockError was raised in main: the program was told (see `_at_exit`).
        self._deadlock_raised = False

    # -- starting and finishing threads ---------------------------------------------

    def start_thread(self, thread: GreenThread) -> None:
        """Make a NEW thread READY; it runs when the hub reaches it."""
        if thread._state is not NEW:
            raise RuntimeError("threads can only be started once")
        thread._hub = self
        thread._state = READY
        thread._ready_at = monotonic()
        self.spawned += 1
        self._threads[thread._ident] = thread
        self._ready.append(thread)
        if self._polling:
            self._netpoll.wakeup()
        elif self.preemptor is not None:
            self.preemptor.timer.maybe_arm()  # the spawner may compute on without parking

    def thread_finished(self, thread: GreenThread) -> None:
        """Called once by every thread as it ends."""
        self._threads.pop(thread._ident, None)
        if len(self._threads) <= 1 and self._all_done:
            self._all_done.wake_all()

    def _carrier_run(self) -> None:
        """The run function of every carrier greenlet: run threads until let go.

        Its first thread is the one `_resume` made current (not a switch argument:
        greenlet would keep that alive as long as the carrier lives).
        """
        thread = self.current
        while thread is not None:
            thread._bootstrap()
            thread = None  # an idle carrier must not keep its last thread (and its locals) alive
            thread = self._carrier_idle()

    def _carrier_idle(self) -> GreenThread | None:
        """A carrier whose thread finished waits in the pool for the next new thread."""
        if len(self._carriers) >= _MAX_IDLE_CARRIERS:
            return None  # returning ends the greenlet, which switches to the hub
        self._carriers.append(getcurrent())
        return self._glet.switch()  # type: ignore[no-any-return]  # switch() gives Any

    def report_exception(self, thread: GreenThread, exc: BaseException) -> None:
        """An exception escaped a green thread: report it once; Ctrl-C goes to main."""
        if isinstance(exc, KeyboardInterrupt) and thread is not self.main:
            self.throw(self.main, exc)
            return
        report_exception(thread, exc)

    # -- timers, I/O, other OS threads ---------------------------------------------------

    def set_clock(self, clock: Clock | None) -> None:
        """Read the deadlines of green waits from ``clock`` from now on (None: real time).

        Only while no timer is pending: a pending deadline was computed on the old
        clock and would fire at a meaningless time on the new one.
        """
        if clock is None:
            clock = REAL_CLOCK
        if not isinstance(clock, Clock):
            raise TypeError(f"set_clock() takes a greensched Clock (or None), not {type(clock).__name__}")
        if clock is self.clock:
            return
        if len(self._timers):
            raise RuntimeError(
                f"cannot change the clock while {len(self._timers)} timer(s) are pending "
                f"(sleeps, timeouts, call_later): their deadlines are on {self.clock!r}; "
                f"set the clock before starting threads that wait, or after they finished"
            )
        self.clock = clock
        self._now = clock.now
        self._jumper = None if clock is REAL_CLOCK else clock

    def call_later(self, delay: float, callback: Callable[[Any], None], arg: Any = None) -> TimerHandle:
        """Run ``callback(arg)`` in the hub after ``delay`` seconds; must not block."""
        deadline = self._now() + delay
        handle = self._timers.schedule(deadline, callback, arg)
        if self.preemptor is not None and self.current is not None:
            self.preemptor.timer.timer_set(deadline, parking=False)  # a thread computing alone sees it fire
        return handle

    def cancel_timer(self, handle: TimerHandle) -> None:
        """Cancel a `call_later`; harmless if it already fired."""
        self._timers.cancel(handle)

    def call_soon_threadsafe(self, callback: Callable[[Any], None], arg: Any = None) -> None:
        """From any OS thread: run ``callback(arg)`` in this hub soon (it must not block)."""
        self._calls.append((callback, arg))
        self._netpoll.wakeup()

    def hold(self) -> None:
        """Another OS thread will call back (e.g. a `to_thread` job): not a deadlock."""
        self._external += 1

    def release(self) -> None:
        """The callback promised by `hold` has arrived."""
        self._external -= 1

    # -- THE loop ------------------------------------------------------------------------

    def _loop(self) -> None:
        """The one place where green threads are resumed. Never returns while in use."""
        ready = self._ready
        yielded = self._yielded
        timers = self._timers
        calls = self._calls
        woken = self._woken
        preemptor = self.preemptor
        timer = None if preemptor is None else preemptor.timer  # when preemption ticks come
        never = _preempt.NEVER  # the timer's expiry while it is stopped
        self.current = None  # whoever switched here first is parked or yielding now
        while True:
            try:
                # An attribute read per pass; the call only when Ctrl-C came.
                if preemptor is not None and preemptor.sigint_pending and preemptor.take_sigint():
                    self.throw(self.main, KeyboardInterrupt())  # left by the handler: see _preempt
                # 1. Run the threads that are ready now; those they wake wait for the next pass.
                while woken:  # woken before the loop began, or by a callback that raised
                    ready.append(woken.popleft())
                now = monotonic()  # then each resume returns the time it gave the CPU back
                if timer is not None and ready:
                    timer.maybe_arm(now, self.ready_count() > 1)  # the first of them runs next
                for _ in range(len(ready)):
                    if not ready:
                        break  # a fork in the child emptied it (see _after_fork_in_child)
                    thread = ready.popleft()
                    if thread._state is not READY:
                        continue  # killed before it ever ran
                    self.resumed_at = now
                    if timer is not None and timer.expiry is never:
                        timer.maybe_arm(now, self.others_ready())  # a tick stopped it during this pass
                    now = self._resume(thread, now)
                    # A hand-off: the first thread it woke runs next, on the same slice,
                    # unless the waker yielded (it was preempted: take turns) or the slice
                    # is spent; the others it woke queue up in order.
                    while woken:
                        first = woken.popleft()
                        run_next = (thread._state is not READY
                                    and now - self.resumed_at < self._handoff_slice())
                        if not run_next:
                            ready.append(first)
                        while woken:
                            ready.append(woken.popleft())
                        if not run_next:
                            break
                        thread = first
                        if thread._state is READY:
                            now = self._resume(thread, now)
                # 2. Timers that are due.
                if timers.has_entries():  # cancelled ones too: the handler peeks at the top
                    for callback, arg in timers.pop_due(self._now()):
                        self._run_callback(callback, arg)
                # 3. Work handed in by other OS threads.
                while calls:
                    callback, arg = calls.popleft()
                    self._run_callback(callback, arg)
                # 4. Poll: don't wait if work is ready; else until the next timer.
                netpoll = self._netpoll  # read now: a fork in step 1 replaced it in the child
                idle_at = None  # a mock clock's next timer, to jump to if the poll is idle
                if ready or yielded:
                    timeout: float | None = 0.0
                else:
                    deadline = timers.next_deadline()
                    if deadline is not None:
                        jumper = self._jumper
                        if jumper is None:
                            timeout = max(deadline - self._now(), 0.0)
                        else:
                            timeout = jumper.sleep_time(deadline, self._now())
                            idle_at = deadline
                    elif netpoll.waiting or self._external or calls:
                        timeout = None
                    elif not _signals.user_signal_handlers():
                        self._deadlock()
                        continue
                    else:
                        timeout = None  # only a signal handler can wake us now
                sleeps = timeout != 0.0
                if sleeps or netpoll.waiting:  # else skip the syscall
                    self._polling = True
                    if sleeps and ready:
                        # A signal handler ran since the check above and woke a thread
                        # (Ctrl-C, a SIGTERM handler setting an event). It could not
                        # write the wake-up pipe, as _polling was still False: sleeping
                        # now would lose that wake-up. From here on, handlers do write it.
                        timeout, sleeps = 0.0, False
                    began = monotonic() if sleeps else 0.0
                    try:
                        tokens = netpoll.poll(timeout)
                    finally:
                        self._polling = False
                        if sleeps:
                            self.polls += 1
                            self.poll_seconds += monotonic() - began
                    if tokens:
                        woke_at = monotonic()  # one clock read for all the poll woke
                        for token in tokens:
                            self.unpark(token, True, woke_at)
                    if tokens:
                        idle_at = None
                jumper = self._jumper
                if idle_at is not None and jumper is not None and not (ready or self._external or calls):
                    jumper.idle(idle_at)
                # 5. Those who yielded this pass go behind everything woken above.
                if yielded:
                    ready.extend(yielded)
                    yielded.clear()
            except GreenletExit:
                return
            except BaseException as exc:  # a callback or signal handler raised in the hub
                self.current = None
                self._deliver_to_main(exc)

    def others_ready(self) -> bool:
        """Is a thread other than the running one waiting for its turn?"""
        return bool(self._ready or self._yielded or self._woken)

    def ready_count(self) -> int:
        """How many threads wait for their turn (not counting the running one)."""
        return len(self._ready) + len(self._yielded) + len(self._woken)

    def _resume(self, thread: GreenThread, now: float) -> float:
        """At time ``now``, switch into READY ``thread`` until it parks, yields or ends (only `_loop`).

        Returns the time it gave the CPU back, which the loop uses as the next
        resume's ``now``: one clock read per switch. A thread that yielded (or was
        preempted) is queued from that moment on, for the run-queue wait in `stats()`.
        """
        thread._state = RUNNING
        self.current = thread
        switches = self.switches = self.switches + 1
        self._waits[switches & _WAIT_MASK] = now - thread._ready_at
        glet = thread._glet
        if glet is None:
            if self._carriers:
                glet = thread._glet = self._carriers.pop()
                glet.switch(thread)  # `_carrier_idle` returns it
            else:
                glet = thread._glet = greenlet(self._carrier_run, parent=self._glet)
                glet.switch()
        else:
            exc = thread._resume_exc
            if exc is None:
                glet.switch()
            else:
                thread._resume_exc = None
                glet.throw(exc)
        self.current = None
        back = monotonic()
        if thread._state is READY:
            thread._ready_at = back
        return back

    def _handoff_slice(self) -> float:
        """How long hand-offs may chain on one slice: the preemption slice.

        Negative (no hand-off) while a Ctrl-C waits for main (`_on_sigint` ran in another thread, e.g.
        one calling ``_thread.interrupt_main()``): the thread woken goes to the run
        queue, so the top of the next pass raises the KeyboardInterrupt in main
        before main runs on. (Handed off to, main would run past the interrupt, as
        an OS main thread does not, and take it in whatever it waited on next.)
        The check costs nothing on a resume that is not a hand-off.
        """
        preemptor = self.preemptor
        if preemptor is None:
            return _preempt.DEFAULT_SLICE_MS / 1000.0
        return -1.0 if preemptor.sigint_pending else preemptor.timer.slice

    def _run_callback(self, callback: Callable[[Any], None], arg: Any) -> None:
        try:
            callback(arg)
        except GreenletExit:
            raise
        except BaseException as exc:  # one failing callback must not lose the others
            self._deliver_to_main(exc)

    def _deliver_to_main(self, exc: BaseException) -> None:
        """An exception raised in the hub is raised in the main green thread instead."""
        if not self.throw(self.main, exc):
            report_exception(self.main, exc)  # main cannot take it: at least say so

    def _deadlock(self) -> None:
        self._deadlock_raised = True
        self._deliver_to_main(DeadlockError(_stacks.deadlock_message(list(self._threads.values()))))


def _main_os_thread_id() -> int:
    import threading

    return threading.main_thread().ident or -1
