"""The Celery pool's clocks: its `Timer` (ETA tasks, heartbeats), its deadline keeper, its shutdown watch.

Private to `greensched.celery`, which imports this module only after `patch_all()`
(Celery's own modules must see the green objects first): import the pool from there,
``greensched.celery:TaskPool`` and ``greensched.celery.Timer``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from time import monotonic
from typing import Any, Protocol

from kombu.asynchronous import timer as _kombu_timer

from . import Event, GreenThread, GreenThreadExit, current_thread, sleep

# Two private core functions, on purpose; both should become public API once the core's
# restructuring settles (gunicorn.py and monkey/_threading.py import mark_root too):
# * thread_frame: `ShutdownWatch` must see whether the main green thread is parked
#   inside kombu's ``drain_events`` before it interrupts that wait; no public call gives
#   another green thread's frame (a ``GreenThread.frame`` property would).
# * mark_root: `Timer._fire` calls Celery's entries, which must stay preemptible like
#   task code (see the same import in greensched/celery.py).
from ._core._preempt import mark_root
from ._core._stacks import thread_frame

__all__ = ["Deadlines", "Limited", "ShutdownWatch", "Timer", "flag_set"]

#: After a shutdown signal, how long the consumer loop may go without noticing it
#: (its own cycle is 2 s) before we interrupt its broker wait; see `ShutdownWatch`.
_UNSTICK_AFTER_S = 3.0


class Timer(_kombu_timer.Timer):
    """Celery's timer (ETA and countdown tasks, heartbeats) on green sleeps.

    Each entry sleeps on a green thread of its own until it is due, then runs; a
    cancelled entry's thread is ended at once so nothing lingers.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]  # kombu's are unannotated
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
                self.apply_entry(entry)  # type: ignore[no-untyped-call]  # kombu's, unannotated
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

    soft: float | None
    hard: float | None
    finished: bool


class Deadlines:
    """The deadlines of running tasks, kept by one green thread.

    ``on_deadline(job, kind)`` runs on that thread when a deadline of a job that has
    not finished comes: ``kind`` is ``"soft"`` or ``"hard"`` (its limits, from `add`)
    or what was given to `push`. ``running()`` says how many jobs run, so entries of
    finished jobs (dropped lazily) do not pile up.
    """

    def __init__(self, on_deadline: Callable[[Any, str], None], running: Callable[[], int]) -> None:
        self._on_deadline = on_deadline
        self._running = running
        self._heap: list[tuple[float, int, str, Limited]] = []
        self._seq = itertools.count()
        self._wake = Event()
        self._next: float | None = None
        self._thread: GreenThread | None = None

    def start(self) -> None:
        self._thread = GreenThread(target=self._run, name="celery-time-limits", daemon=True)
        self._thread.start()

    def stop(self, wait: bool = False) -> None:
        """End the keeper's thread; with ``wait``, until it has (1 s at most)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.kill(block=wait, timeout=1.0)

    def add(self, job: Limited, now: float) -> None:
        """A job starts at ``now``: keep its soft and hard deadlines."""
        for limit, kind in ((job.soft, "soft"), (job.hard, "hard")):
            if limit:
                self.push(job, now + float(limit), kind)
        if len(self._heap) > 64 and len(self._heap) > 4 * self._running():
            # Entries of finished tasks are dropped lazily; don't let them pile up.
            self._heap = [item for item in self._heap if not item[3].finished]
            heapq.heapify(self._heap)

    def push(self, job: Limited, deadline: float, kind: str) -> None:
        """Call ``on_deadline(job, kind)`` at ``deadline`` (monotonic), unless it has finished by then."""
        heapq.heappush(self._heap, (deadline, next(self._seq), kind, job))
        if self._next is None or deadline < self._next:
            self._wake.set()

    def _run(self) -> None:
        heap = self._heap
        while True:
            heap = self._heap
            now = monotonic()
            while heap and heap[0][0] <= now:
                _deadline, _seq, kind, job = heapq.heappop(heap)
                if not job.finished:
                    self._on_deadline(job, kind)
            self._next = heap[0][0] if heap else None
            self._wake.wait(None if self._next is None else max(self._next - monotonic(), 0.0))
            self._wake.clear()


def flag_set(value: Any) -> bool:
    """Celery's shutdown flags hold an exit code, and 0 (EX_OK) counts: "set" is not None/False."""
    return value is not None and value is not False


def _in_consumer_drain(thread: GreenThread) -> bool:
    """Is ``thread`` parked inside the consumer loop's ``drain_events`` call?"""
    frame = thread_frame(thread)
    while frame is not None:
        if (frame.f_code.co_name == "drain_events" and frame.f_globals.get("__name__") == "kombu.connection"
                and frame.f_back is not None and frame.f_back.f_code.co_name == "_loop_cycle"):
            return True
        frame = frame.f_back
    return False


class ShutdownWatch:
    """Make sure the consumer loop sees a shutdown signal (py-amqp with short heartbeats).

    Celery's green loop checks its shutdown flags between calls to
    ``drain_events(timeout=2.0)``. py-amqp restarts that timeout on every frame it
    reads, heartbeats included, so with ``broker_heartbeat`` below 4 s (RabbitMQ
    sends one every half interval) the call never returns and a SIGTERM is never
    acted on (gevent's pool hangs the same way). If the flag has been set for
    `_UNSTICK_AFTER_S` and the main green thread (``main()``) is still waiting in that
    call, we raise the timeout it asked for there; the loop then sees the flag.
    """

    def __init__(self, main: Callable[[], GreenThread | None]) -> None:
        self._main = main
        #: Its own stop flag: it runs from `start` until `stop`, whatever else the pool does.
        self._watching = False
        self._thread: GreenThread | None = None

    def start(self) -> None:
        self._watching = True
        self._thread = GreenThread(target=self._run, name="celery-shutdown-watch", daemon=True)
        self._thread.start()

    def stop(self, wait: bool = False) -> None:
        """End the watch; with ``wait``, until its thread has (1 s at most)."""
        self._watching = False
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.kill(block=wait, timeout=1.0)

    def _run(self) -> None:
        from celery.worker import state

        flagged: float | None = None
        while self._watching:
            try:
                sleep(0.5)
            except GreenThreadExit:
                return  # stopped
            if not (flag_set(state.should_stop) or flag_set(state.should_terminate)):
                flagged = None
                continue
            now = monotonic()
            if flagged is None:
                flagged = now
            elif now - flagged >= _UNSTICK_AFTER_S:
                flagged = now
                main = self._main()
                if main is not None and main.state == "PARKED" and _in_consumer_drain(main):
                    main.throw(TimeoutError("greensched.celery: drain_events interrupted for shutdown"))
