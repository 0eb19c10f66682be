"""Test helpers: `MockClock`, a scheduler clock that only moves when told to.

Use it to test timers, timeouts and ordering without waiting or racing wall time::

    clock = MockClock(autojump_threshold=0)
    greensched.set_clock(clock)          # no timer may be pending
    try:
        greensched.sleep(3600)           # returns at once; clock.now() == 3600
    finally:
        greensched.set_clock(None)       # back to real time

(the test suite's ``mock_clock`` fixture does the setting and resetting).

What the mock clock moves: every deadline of a *green wait* — ``sleep``, park and
``Timeout`` deadlines, ``Event.wait(timeout)``, ``Condition.wait(timeout)``,
``Queue.get(timeout=...)``, socket/ssl/select timeouts, ``call_later``. What it
does not move: ``time.monotonic()`` and ``time.time()`` as user code calls them
(patched or not, they stay real), preemption and hand-off slices (they measure CPU
time), ``greensched.monitor``'s timings, and anything real servers time (the Celery
pool, the Gunicorn worker, the psycopg patches). Preemption still happens on real
time while a mock clock is set.
"""

from __future__ import annotations

import math

from ._core._clock import Clock

__all__ = ["MockClock"]

#: With autojumping off, the longest real wait of one poll: the hub looks again
#: after this, so a `MockClock.jump` from another OS thread is seen eventually.
_POLL_CAP = 86400.0


class MockClock(Clock):
    """A clock for tests, after trio's ``MockClock``.

    ``start``: the time it reads first (default 0). ``jump(seconds)`` moves it
    forward; the timers that came due fire at the hub's next pass, in deadline order
    (equal deadlines in the order they were set).

    ``autojump_threshold`` (real seconds, default ``inf`` = never): when every green
    thread is parked, no I/O has been ready for that long and no other OS thread owes
    the hub a callback (``to_thread`` work in flight), the clock jumps straight to the
    next timer's deadline. ``0`` jumps as soon as the program is idle: a program with
    ``sleep(3600)`` runs instantly, with the same order of events it would have on a
    real clock. With a threshold above 0, I/O that takes longer than it (a real
    server's reply) lets time jump first; use 0 only for programs whose waits are
    all on timers or on local, immediate I/O.

    Time never moves by itself otherwise: no ``rate``.
    """

    def __init__(self, start: float = 0.0, autojump_threshold: float = math.inf) -> None:
        self._time = float(start)
        self._threshold = math.inf
        self.autojump_threshold = autojump_threshold

    @property
    def autojump_threshold(self) -> float:
        """Real seconds of idleness before the clock jumps to the next timer; inf: never."""
        return self._threshold

    @autojump_threshold.setter
    def autojump_threshold(self, seconds: float) -> None:
        seconds = float(seconds)
        if not seconds >= 0:  # also catches NaN
            raise ValueError(f"autojump_threshold must be >= 0 (inf for never), not {seconds!r}")
        self._threshold = seconds

    def now(self) -> float:
        return self._time

    def jump(self, seconds: float) -> None:
        """Move the clock forward ``seconds`` (>= 0). Timers due by then fire at the
        hub's next pass: call it from a green thread, then park (``sleep(0)``) to let
        them run."""
        seconds = float(seconds)
        if not seconds >= 0:
            raise ValueError(f"time only moves forward: jump({seconds!r})")
        self._time += seconds

    def sleep_time(self, deadline: float, now: float) -> float:
        if deadline <= now:
            return 0.0
        return min(self._threshold, _POLL_CAP)

    def idle(self, deadline: float) -> None:
        if self._threshold != math.inf and deadline > self._time:
            self._time = deadline

    def __repr__(self) -> str:
        return f"MockClock(time={self._time!r}, autojump_threshold={self._threshold!r})"
