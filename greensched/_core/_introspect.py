"""Seeing inside a hub: every green thread's stack at once, and the counters of `stats()`.

Everything here only *reads* the hub and its threads and never switches, so it is
safe to call from anywhere: a green thread, the hub itself (a signal handler that
ran while the hub polled), or another OS thread (the blocking detector). Reads from
another OS thread are snapshots that may be a moment stale; nothing here trusts two
of them to agree. One thread's stack, and the deadlock report, are `_stacks`'s.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ._greenthread import PARKED
from ._hub import WAIT_WINDOW, Hub
from ._stacks import display_name, format_thread

__all__ = ["format_stacks", "park_category", "PARK_CATEGORIES", "scheduler_stats", "write_text"]

_os_write = os.write  # the real one, whatever is patched later


def format_stacks(hub: Hub) -> str:
    """Every green thread of ``hub``: who it is, what it waits on, its stack."""
    threads = list(hub._threads.values())  # one snapshot: the dict may change under us
    current = hub.current
    where_hub = "the hub is running" if current is None else f"running: {display_name(current)!r}"
    lines = [f"greensched: {len(threads)} green threads in OS thread {hub.os_thread_id} "
             f"({where_hub}, {hub.switches} switches so far)\n"]
    for thread in threads:
        lines.append("\n" + format_thread(thread))
    return "".join(lines)


# -- counters ----------------------------------------------------------------------------------

#: The kinds of wait `stats()["parked_by"]` counts, in a stable order.
PARK_CATEGORIES = ("sleep", "fd", "lock", "condition", "event", "queue", "join", "to_thread", "other")

_QUEUE_SUFFIXES = (".get()", ".put()", ".join()")
#: park_category's answers by reason (most reasons are one string per wait queue).
_categories: dict[str | None, str] = {}


def park_category(reason: str | None) -> str:
    """The kind of wait behind a park reason (the strings `Hub.park` is given).

    Derived when asked, from the reason string, so parking itself pays nothing.
    """
    if not reason:
        return "other"
    if reason.startswith("sleep("):
        return "sleep"
    if reason.startswith("fd"):  # "fd 5 readable", "fds readable [...] or writable [...]"
        return "fd"
    if reason.endswith(".acquire()"):  # Lock, RLock, Semaphore, BoundedSemaphore
        return "lock"
    if reason == "Condition.wait()":
        return "condition"
    if reason == "Event.wait()":
        return "event"
    if reason.endswith(_QUEUE_SUFFIXES):
        return "queue"
    if reason.startswith("join(") or reason == "run()":
        return "join"
    if reason.startswith("to_thread("):
        return "to_thread"
    return "other"


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ordered, non-empty list."""
    rank = max(int(len(ordered) * fraction + 0.999999) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


def scheduler_stats(hub: Hub) -> dict[str, Any]:
    """The counters behind `greensched.stats()`; see its docstring for each key."""
    threads = list(hub._threads.values())
    parked_by = dict.fromkeys(PARK_CATEGORIES, 0)
    parked = 0
    known = _categories
    if len(known) > 4096:
        known.clear()  # sleep reasons differ by their duration: keep the cache bounded
    for thread in threads:
        if thread._state is PARKED:
            parked += 1
            reason = thread._waiting_on
            category = known.get(reason)
            if category is None:
                category = known[reason] = park_category(reason)
            parked_by[category] += 1
    switches = hub.switches
    window = hub._waits
    if switches >= WAIT_WINDOW:
        waits = sorted(window)
    else:
        waits = sorted(window[1:switches + 1])  # resume number n is stored at n % WAIT_WINDOW
    out: dict[str, Any] = {
        "threads": len(threads),
        "spawned": hub.spawned,
        "running": 0 if hub.current is None else 1,
        "ready": hub.ready_count(),
        "parked": parked,
        "parked_by": parked_by,
        "switches": switches,
        "timers": len(hub._timers),
        "fds_waited_on": hub._netpoll.waiting,
        "run_queue_wait_samples": len(waits),
        "run_queue_wait_p50_ms": _percentile(waits, 0.50) * 1e3 if waits else 0.0,
        "run_queue_wait_p99_ms": _percentile(waits, 0.99) * 1e3 if waits else 0.0,
        "run_queue_wait_max_ms": waits[-1] * 1e3 if waits else 0.0,
        "hub_polls": hub.polls,
        "hub_poll_seconds": hub.poll_seconds,
    }
    p = hub.preemptor
    if p is not None:
        out.update(
            preemption_enabled=p.enabled,
            slice_ms=p.slice * 1000.0,
            granularity_ms=p.granularity * 1000.0,
            ticks=p.ticks,
            preemption_requests=p.requests,
            preemptions=p.preemptions,
            call_preemptions=p.call_preemptions,
            stuck_preemptions=p.stuck_preemptions,
            retried_requests=p.retried,
            deferred_requests=p.deferred_requests,
            wakeup_preemptions=p.wakeup_preemptions,
            timer_starts=p.timer.timer_starts,
        )
    return out


# -- writing -----------------------------------------------------------------------------------


def write_text(text: str, file: Any = None) -> None:
    """Write ``text`` to ``file``, default ``sys.stderr``, without ever raising.

    To the default stderr it goes with ``os.write`` on its fd when it has one:
    a dump may interrupt (signal handler) or run beside (another OS thread) code
    that is in the middle of writing to ``sys.stderr``, whose buffer would then
    refuse the reentrant call. A file given explicitly is written and flushed.
    """
    target = file if file is not None else sys.stderr
    if target is None:
        return
    try:
        fd = target.fileno() if file is None else -1
    except (AttributeError, OSError, ValueError):
        fd = -1
    try:
        if fd >= 0:
            data = text.encode(getattr(target, "encoding", None) or "utf-8", "backslashreplace")
            while data:
                data = data[_os_write(fd, data):]
        else:
            target.write(text)
            target.flush()
    except Exception:  # a report must never take the program down
        pass
