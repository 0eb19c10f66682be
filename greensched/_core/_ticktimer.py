"""When the next preemption tick comes: the SIGALRM timer of the main hub's preemptor.

`_preempt` decides what a tick does; this module decides when ticks happen. The
timer (``setitimer(ITIMER_REAL)``) is armed for the next moment a switch could be
due, and only then:

* the running thread's **slice end**, if others are ready;
* the next **timer deadline** (a sleeper, a timeout), but not before the running
  thread has run the *granularity*: wake-up preemption;
* a granularity from now while **fds are waited on**, to look at their readiness
  (the handler asks the netpoller, which consumes nothing), or while a request is
  outstanding or an exception held back for the running thread, to try again.

Who arms it
-----------
* the hub, before each pass and before a resume whose tick a preemption earlier in
  the same pass used up (`maybe_arm`);
* a thread that readies another (a hand-off: `thread_woken`), when no tick is armed
  for its own slice end, and a thread spawning another;
* a thread that parks with a timeout while others are ready, or sets a timer and
  computes on (a `Timeout`): `timer_set`;
* each tick that does not switch, for the next one (`arm_next`); a tick that switches
  arms the next thread's for a slice away, which the hub brings forward if needed.

Nothing is armed when nobody else could run: a thread alone, or beside threads
parked with no timeout, gets no signal at all, and a tick that finds the hub asleep
in its poll stops the timer. A check costs a comparison while the armed tick comes
soon enough, the usual case: ``setitimer`` runs only when it is missing or too late.

The backstop
------------
Every arming also sets an interval of one granularity. CPython notices a signal
only where it checks for one, and a tick that lands after a C call's check and
before its next blocking syscall (an unpatched ``time.sleep`` resuming after a
switch: its handler loop has passed SIGALRM's slot) waits for that syscall to
return, up to a second; the next tick interrupts the syscall. Every handler that
runs re-arms the timer or stops it, so the interval fires only when one could not.
Measured before it existed: a 50-client demo beside an unpatched ``sleep(1)`` loop
went silent for 0.3-0.9 s in one run of three.

Things that don't work
----------------------
* An interval timer at a fraction of the slice (what we had: every 5 ms). A sleeper
  falling due waits for the next tick: a 5 ms ticker beside a hog was 5.5 ms late at
  p99, as late as with OS threads and their 5 ms GIL interval, and an unpatched C
  ``time.sleep(1)`` froze it for 11.5 ms.
* Arming the timer for every resume: a ``setitimer`` per switch, where hand-offs
  switch a hundred thousand times a second. The hub compares with `expiry` instead.
* Stopping the timer each time the hub goes to sleep: two ``setitimer`` calls per
  sleep, and a hub serving a socket ping-pong sleeps for microseconds on every
  round trip (measured: 28-34k round trips a second instead of 35-39k with
  preemption off). A tick that finds the hub asleep stops it: one per idle spell.

The handler rule (see `_preempt`) holds here: the handler-side methods (`arm`,
`arm_next`, `next_tick`, `disarm`) read the hub and make one syscall; the only field
they write is `expiry`, a hint that thread code sets before each syscall (`arm`).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ._signals import setitimer

if TYPE_CHECKING:
    from ._clock import Clock
    from ._greenthread import GreenThread
    from ._netpoll import Netpoller
    from ._timers import TimerHeap

__all__ = ["TickTimer", "PreemptedHub", "NEVER"]

#: `TickTimer.expiry` while the timer is stopped (the hub tests it with ``is``).
NEVER = float("inf")
#: The shortest delay we set (``setitimer`` with 0 would stop the timer instead).
_MIN_DELAY_S = 20e-6


class PreemptedHub(Protocol):
    """What preemption reads and calls of its hub (`_hub.Hub`, which imports this
    module: naming the hub by this protocol keeps the imports one way)."""

    current: GreenThread | None
    main: GreenThread
    switches: int
    resumed_at: float
    _threads: dict[int, GreenThread]
    _timers: TimerHeap
    _netpoll: Netpoller
    _polling: bool
    _jumper: Clock | None  # the hub's clock unless it is the real one (see _clock)

    def _now(self) -> float: ...
    def others_ready(self) -> bool: ...
    def yield_now(self) -> None: ...


class TickTimer:
    """The one-shot SIGALRM timer of one hub (the main OS thread's), with its backstop."""

    def __init__(self, hub: PreemptedHub, before_first_arm: Callable[[], None]) -> None:
        self._hub = hub
        self._before_first_arm = before_first_arm  # the preemptor installs its handlers
        self.enabled = True
        self.slice = 0.010
        #: How long a thread runs before a due sleeper or a ready fd preempts it.
        self.granularity = 0.001
        #: When the timer fires next (monotonic seconds), `NEVER` when stopped: a hint,
        #: set before each ``setitimer`` (see `arm`). The hub reads it.
        self.expiry: float = NEVER
        self.timer_starts = 0  # times the timer was armed while stopped

    # -- thread code: the hub and the running thread --------------------------------------

    def maybe_arm(self, now: float | None = None, others: bool | None = None) -> None:
        """A thread is about to run (the hub), or one was spawned, or a timer set by a
        running thread: arm the timer if they need a tick sooner.

        ``others``: from the hub, whether threads besides the one it resumes next are
        ready; from a thread, left out (the run queue says). Cheap when a tick is due
        within the granularity (the usual case while threads compete): that tick
        will look at everything and arm the next one itself.
        """
        if now is None:
            now = time.monotonic()
        expiry = self.expiry
        if now < expiry <= now + self.granularity or not self.enabled:
            return
        hub = self._hub
        if len(hub._threads) < 2 and not len(hub._timers):
            return  # alone: nothing to share the CPU with
        # Thread code, not the handler: next_deadline may drop cancelled timers off the top.
        deadline = hub._timers.next_deadline()
        if hub.current is None:  # the hub, about to resume a thread
            at = self.next_tick(now, now, hub.others_ready() if others is None else others, deadline)
        else:
            at = self.next_tick(now, hub.resumed_at, hub.others_ready(), deadline)
        if at != NEVER and (at < expiry or expiry <= now):  # earlier, or that one is stale
            if expiry == NEVER:
                self._before_first_arm()
                self.timer_starts += 1
            self.arm(at, now)

    def timer_set(self, deadline: float, parking: bool) -> None:
        """A running thread set a timer: arm for its deadline if that comes first.

        ``parking``: the thread is about to park until then (a sleep, a wait with a
        timeout). The timer matters only to whoever runs meanwhile, so nothing is
        armed when nobody is ready: the hub sleeps until the deadline in its poll.
        One comparison when a tick comes sooner anyway.
        """
        hub = self._hub
        if (hub._jumper is None and deadline >= self.expiry) or (parking and not hub.others_ready()):
            return
        self.maybe_arm()

    def thread_woken(self) -> None:
        """A running thread made another ready (a hand-off): it needs a slice's end now.

        One comparison while a tick is armed by then, as it is whenever others compete.
        """
        if self.expiry > self._hub.resumed_at + self.slice:
            self.maybe_arm()

    # -- both sides: reads, and one syscall ---------------------------------------------------

    def next_tick(self, now: float, began: float, others: bool, deadline: float | None,
                  recheck: bool = False) -> float:
        """When the next tick should come for a thread that began running at ``began``.

        The earliest of: the slice's end if ``others`` are ready; the timers'
        ``deadline``, but not before the thread has run the granularity; the
        granularity from now if fds are waited on (to look at their readiness) or
        ``recheck`` asks for it (a request outstanding, an exception held back).
        `NEVER` when nothing could need a tick. Reads only.
        """
        hub = self._hub
        granularity = self.granularity
        # Past moments are requests already made (the handler asks at once when the slice
        # is spent or a timer due): for those, the next look is the recheck.
        soon = began + granularity if began + granularity > now else now + granularity
        at = began + self.slice if others else NEVER
        if deadline is not None:
            if hub._jumper is not None:
                deadline = now + self.slice  # a mock clock's deadlines: look once a slice
            at = min(at, max(deadline, began + granularity))
        if recheck or hub._netpoll.waiting:
            at = min(at, soon)
        return at if at > now else soon

    def arm(self, at: float, now: float) -> None:
        """Set the timer for ``at``, and its backstop: the hint first, then the syscall.

        In that order, a tick between the two lines leaves the timer armed by the
        second (the handler's own `arm` is overwritten, with a later or earlier
        expiry: the next tick corrects either); the other order could leave the hint
        saying "stopped" with the timer running, or "armed" with none.
        """
        self.expiry = at
        setitimer(signal.ITIMER_REAL, max(at - now, _MIN_DELAY_S), self.granularity)

    def disarm(self) -> None:
        """Stop the timer (the hub arms it again when threads compete).

        The syscall first: a tick between the two lines finds the hint still "armed"
        and stops the timer again, or arms it for a thread, which the hint then
        forgets (the next check arms it afresh: one ``setitimer`` too many).
        """
        setitimer(signal.ITIMER_REAL, 0.0, 0.0)
        self.expiry = NEVER

    # -- the handler side -------------------------------------------------------------------------

    def fired(self, now: float) -> None:
        """A tick arrived: the backstop comes next, unless the handler re-arms."""
        if self.expiry != NEVER:
            self.expiry = now + self.granularity

    def arm_next(self, now: float, recheck: bool) -> None:
        """After a tick that did not switch: arm the next one, or stop the timer if
        nothing could need it.

        The hub asleep in its poll needs none (it re-arms when it resumes threads);
        the hub busy elsewhere in its loop keeps the backstop (it may resume a thread
        without a pass's `maybe_arm` first noticing this tick fired).
        """
        hub = self._hub
        if hub.current is None:
            if hub._polling or not self.enabled:
                self.disarm()
            return
        # peek_deadline, never next_deadline: the latter pops cancelled entries, and this
        # runs at any bytecode, e.g. inside TimerHeap.cancel rebuilding the heap.
        at = self.next_tick(now, hub.resumed_at, hub.others_ready(), hub._timers.peek_deadline(), recheck)
        if at == NEVER or not self.enabled:
            self.disarm()  # alone, or nobody else can run: stop ticking
        else:
            self.arm(at, now)

    def after_fork_in_child(self) -> None:
        self.expiry = NEVER  # a child does not inherit the timer; the hub re-arms it


#: Frames of these run inside the signal handler (or are thread code the handler must
#: leave alone): a tick landing there is ignored (see `_preempt`).
HANDLER_CODES = frozenset(
    f.__code__
    for f in (TickTimer.maybe_arm, TickTimer.timer_set, TickTimer.thread_woken, TickTimer.next_tick,
              TickTimer.arm, TickTimer.disarm, TickTimer.fired, TickTimer.arm_next)
)
