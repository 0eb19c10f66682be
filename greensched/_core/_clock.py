"""The clock the hub schedules green waits by: an interface and the real one.

Every deadline of a green wait (a park timeout, ``sleep``, ``call_later``, a
``Timeout``, the poll's timeout, the deadlines in ``sync``, ``queue`` and ``net``) is
read through the hub's clock, so a test can swap in `greensched.testing.MockClock`
and run a program with hour-long sleeps in no time, or step time by hand.

What stays on real time, on purpose:

* preemption slices, hand-off slices and the run-queue/poll statistics: they
  measure CPU and wall time, which a fake clock cannot give;
* ``time.monotonic`` / ``time.time`` as user code sees them (patched or not): the
  clock is the scheduler's, not the process's;
* ``monitor``, the Celery pool and Gunicorn worker, the psycopg patches: they time
  real servers.

The real clock costs nothing extra: the hub keeps ``clock.now`` as a bound
attribute (for `MonotonicClock` that is ``time.monotonic`` itself) and handles the
real clock's sleeping inline, calling `Clock.sleep_time` / `Clock.idle` only for
other clocks.
"""

from __future__ import annotations

import time

__all__ = ["Clock", "MonotonicClock", "REAL_CLOCK"]


class Clock:
    """What the hub needs from a clock. Subclass it and override all three."""

    def now(self) -> float:
        """The current time in seconds; never goes backwards."""
        raise NotImplementedError

    def sleep_time(self, deadline: float, now: float) -> float:
        """How many real seconds the hub's poll may wait for I/O when the next timer
        is due at ``deadline`` and the clock says ``now``."""
        raise NotImplementedError

    def idle(self, deadline: float) -> None:
        """The poll waited `sleep_time` and came back with nothing to do, the next
        timer due at ``deadline``: every green thread is parked, no I/O is ready and
        no other OS thread owes the hub a callback. A mock clock may jump here."""


class MonotonicClock(Clock):
    """Real time: ``time.monotonic``. The default; the hub special-cases it."""

    # The staticmethod is the C function itself: `hub._now()` is one C call.
    now = staticmethod(time.monotonic)

    def sleep_time(self, deadline: float, now: float) -> float:
        return max(deadline - now, 0.0)

    def idle(self, deadline: float) -> None:
        pass

    def __repr__(self) -> str:
        return "MonotonicClock()"


#: The one real clock every hub starts with.
REAL_CLOCK = MonotonicClock()
