"""A seeded schedule: force preemption requests at random lines, far above the slice rate.

How it works: a ``sys.settrace`` function counts the *line* events of every frame
outside greensched (the workload's code, and the stdlib's under ``patch_all``)
and, when a seeded countdown reaches zero, calls `Preemptor.request_switch`: a
pending call trips SIGALRM, and the real preemption handler runs at the next
check of the traced code. It decides exactly as at a timer tick: it switches at a
safe point, or retries at the next check when the thread is inside greensched or
a buffered file. The trace function itself never switches (on 3.11 a switch from
inside a trace function leaves tracing off in the other greenlets), and the real
timer is set to a 50 minute slice so that only the seed decides.

Same seed, same workload: the same lines get the same requests, so a failure
replays (``GREENSCHED_FUZZ_SEED``, see test_schedule_fuzz.py). Anything the
workload does with real time (a timeout that fires) can still vary a little.

The fuzzer owns ``sys.settrace`` while it runs: it refuses to start under
coverage or a debugger (the test then skips) and restores nothing but ``None``.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import greensched
from greensched._core._hub import get_hub

__all__ = ["Schedule", "forced_schedule", "FUZZ_SLICE_MS"]

#: The real timer's slice while fuzzing: long enough never to tick during a run.
FUZZ_SLICE_MS = 3_000_000.0


class Schedule:
    """Line-event countdowns drawn from ``random.Random(seed)``; between 1 and 2 * mean lines."""

    def __init__(self, seed: int, mean_lines: int = 6) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.mean = mean_lines
        self.countdown = self._draw()
        self.requests = 0
        preemptor = get_hub().preemptor
        if preemptor is None:
            raise RuntimeError("the schedule fuzzer runs in the main OS thread only")
        self.preemptor = preemptor
        # A request whose check lands inside this trace function is retried after it
        # returns: a switch from inside a trace function leaves tracing off elsewhere.
        preemptor.no_switch_codes = frozenset(
            f.__code__ for f in (Schedule.global_trace, Schedule.local_trace, Schedule._draw))

    def _draw(self) -> int:
        return self.rng.randint(1, 2 * self.mean)

    def global_trace(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        if self.preemptor._deciding:
            return None  # the handler's own helpers (dis, via _safepoints): not the workload
        name = frame.f_globals.get("__name__") or ""
        if name == "greensched" or name.startswith("greensched."):
            return None  # requests land there anyway, through the checks inside our code
        return self.local_trace

    def local_trace(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
        if event == "line" and not self.preemptor._deciding:
            self.countdown -= 1
            if self.countdown <= 0:
                self.countdown = self._draw()
                self.requests += 1
                self.preemptor.request_switch()  # the trip fires after we return
        return self.local_trace


@contextmanager
def forced_schedule(seed: int, mean_lines: int = 6) -> Iterator[Schedule]:
    """Run the block under `Schedule(seed)`; the previous preemption settings come back after."""
    if sys.gettrace() is not None:
        raise RuntimeError("another tracer (coverage, a debugger) owns sys.settrace")
    before = greensched.get_preemption()
    greensched.set_preemption(True, FUZZ_SLICE_MS)
    schedule = Schedule(seed, mean_lines)
    sys.settrace(schedule.global_trace)
    try:
        yield schedule
    finally:
        sys.settrace(None)
        schedule.preemptor._forced = False
        schedule.preemptor.no_switch_codes = frozenset()
        greensched.set_preemption(*before)
