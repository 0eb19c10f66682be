"""The Celery pool's clocks: its `Timer` (ETA tasks, heartbeats) and its deadline keeper.

Private to `greensched.celery`, which imports this module only after `patch_all()`
(Celery's own modules must see the green objects first): import the pool from there,
``greensched.celery:TaskPool`` and ``greensched.celery.Timer``.
"""

from __future__ import annotations

import heapq
import itertools
from time import monotonic
from typing import Any, Callable, Optional, Protocol

from kombu.asynchronous import timer as _kombu_timer

from . import Event, GreenThread, GreenThreadExit, current_thread, sleep

# Private, on purpose, until it is public API (see the same import in greensched/celery.py):
# `Timer._fire` calls Celery's entries, which must be preemptible like task code.
from ._core._preempt import mark_root

__all__ = ["Deadlines", "Limited", "Timer"]


class Timer(_kombu_timer.Timer):  # type: ignore[misc]  # kombu has no type hints
    """Celery's timer (ETA and countdown tasks, heartbeats) on green sleeps.

    Each entry sleeps on a green thread of its own until it is due, then runs; a
    cancelled entry's thread is ended at once so nothing lingers.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[Any, tuple[float, int, GreenThread]] = {}

    def _enter(self, eta: float, priority: int, entry: Any, push: Any = None) -> Any:
        thread = GreenThread(target=self._fire, args=(eta, entry), name="celery-timer", daemon=True)
        self._pending[entry] = (eta, priority, thread)
        thread.start()
        return entry

    def _fire(self, eta: float, entry: Any) -> None:
        try:
            delay = eta - monotonic()
            if delay > 0:
                sleep(delay)
            if self._pending.get(entry, (0, 0, None))[2] is current_thread():
                del self._pending[entry]
            if not entry.canceled:
                self.apply_entry(entry)
        except GreenThreadExit:
            pass

    def cancel(self, tref: Any) -> None:
        tref.cancel()
        pending = self._pending.pop(tref, None)
        if pending is not None:
            pending[2].kill(block=False)

    def clear(self) -> None:
        pending, self._pending = self._pending, {}
        for _eta, _priority, thread in pending.values():
            thread.kill(block=False)

    def stop(self) -> None:
        self.clear()

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def queue(self) -> list[Any]:
        """The pending entries, soonest first, as kombu's ``scheduled`` tuples."""
        return [_kombu_timer.scheduled(eta, priority, entry)
                for entry, (eta, priority, _t) in sorted(self._pending.items(), key=lambda kv: kv[1][:2])]


mark_root(Timer._fire)


class Limited(Protocol):
    """What the deadline keeper reads of a job (the pool's ``_Job``)."""

    soft: Optional[float]
    hard: Optional[float]
    finished: bool
    ended: bool


class Deadlines:
    """The soft and hard deadlines of running tasks, kept by one green thread.

    ``on_deadline(job, soft)`` runs on that thread when a deadline of a job that has
    neither finished nor been ended comes; ``running()`` says how many jobs run, so
    entries of finished jobs (dropped lazily) do not pile up.
    """

    def __init__(self, on_deadline: Callable[[Any, bool], None], running: Callable[[], int]) -> None:
        self._on_deadline = on_deadline
        self._running = running
        self._heap: list[tuple[float, int, bool, Limited]] = []
        self._seq = itertools.count()
        self._wake = Event()
        self._next: Optional[float] = None
        self._thread: Optional[GreenThread] = None

    def start(self) -> None:
        self._thread = GreenThread(target=self._run, name="celery-time-limits", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.kill(block=False)
            self._thread = None

    def add(self, job: Limited, now: float) -> None:
        for limit, soft in ((job.soft, True), (job.hard, False)):
            if limit:
                deadline = now + float(limit)
                heapq.heappush(self._heap, (deadline, next(self._seq), soft, job))
                if self._next is None or deadline < self._next:
                    self._wake.set()
        if len(self._heap) > 64 and len(self._heap) > 4 * self._running():
            # Entries of finished tasks are dropped lazily; don't let them pile up.
            self._heap = [item for item in self._heap if not item[3].finished]
            heapq.heapify(self._heap)

    def _run(self) -> None:
        heap = self._heap
        while True:
            heap = self._heap
            now = monotonic()
            while heap and heap[0][0] <= now:
                _deadline, _seq, soft, job = heapq.heappop(heap)
                if not job.finished and not job.ended:
                    self._on_deadline(job, soft)
            self._next = heap[0][0] if heap else None
            self._wake.wait(None if self._next is None else max(self._next - monotonic(), 0.0))
            self._wake.clear()
