"""Seeing inside a hub: each green thread's stack, the deadlock report, the counters.

Everything here only *reads* the hub and its threads and never switches, so it is
safe to call from anywhere: a green thread, the hub itself (a signal handler that
ran while the hub polled), or another OS thread (the blocking detector reads the
main thread's stack through `sys._current_frames`). Reads from another OS thread
are snapshots that may be a moment stale; nothing here trusts two of them to agree.

Where a thread's stack comes from:

* a suspended green thread: its greenlet's ``gr_frame``, the frame it will resume;
* the green thread running now, asked from its own OS thread: the caller's frames;
* the green thread running now, asked from another OS thread: that OS thread's
  innermost frame, from `sys._current_frames`;
* a thread that has not started yet has no stack.

greensched's own frames at the two ends of a stack (the carrier and bootstrap
frames below the thread's function; the lock or queue method, the park, the switch
and these very formatting frames above the user's code) tell the reader nothing,
so they are left out; "waits on" says what the thread is parked on.
"""

from __future__ import annotations

import _thread
import os
import sys
import traceback
from types import FrameType
from typing import TYPE_CHECKING, Any

from ._greenthread import NEW, PARKED, GreenThread

if TYPE_CHECKING:
    from ._hub import Hub

__all__ = [
    "WAIT_WINDOW", "new_wait_window", "thread_frame", "thread_stack", "where", "display_name",
    "format_thread",
    "format_stacks", "deadlock_message", "park_category", "PARK_CATEGORIES", "scheduler_stats",
    "write_text",
]

#: How many recent resumes the run-queue wait statistics cover (a power of two).
WAIT_WINDOW = 1024

_os_thread_ident = _thread.get_ident
_os_write = os.write  # the real one, whatever is patched later

#: Frames of these modules at either end of a stack are greensched's machinery.
_MACHINERY = ("greensched._core.", "greensched.monitor")

#: A deadlock report shows this many threads' stacks, each this many frames deep.
_DEADLOCK_STACKS = 20
_DEADLOCK_FRAMES = 10
#: ... and lists at most this many threads at all.
_DEADLOCK_THREADS = 200


def new_wait_window() -> list[float]:
    """The hub's ring of recent run-queue waits, in seconds, indexed by switch number.

    A list, not an `array`: storing into a list is one specialised bytecode, while
    an array's item assignment parses its argument (measured: 280 instructions).
    """
    return [0.0] * WAIT_WINDOW


# -- stacks ----------------------------------------------------------------------------------


def thread_frame(thread: GreenThread) -> FrameType | None:
    """The innermost Python frame of ``thread``, or None (not started, or finished)."""
    glet = thread._glet
    if glet is None:
        return None
    frame = glet.gr_frame  # None while the greenlet runs
    if frame is not None:
        return frame
    hub = thread._hub
    if hub is None or hub.current is not thread:
        return None
    if _os_thread_ident() == hub.os_thread_id:
        return sys._getframe(1)  # we run in it: our caller's frames are its stack
    return sys._current_frames().get(hub.os_thread_id)


def _is_machinery(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__") or ""
    return name.startswith(_MACHINERY)


def _is_greensched(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__") or ""
    return name == "greensched" or name.startswith("greensched.")


def thread_stack(frame: FrameType | None, limit: int | None = None,
                 user_only: bool = False, keep_public: bool = False) -> traceback.StackSummary:
    """The stack ending at ``frame``, outermost first, without greensched's end frames.

    ``user_only`` drops every greensched frame, not only those at the ends;
    ``keep_public`` trims only the core's frames at the ends, keeping those of
    greensched's public modules (``sync``, ``queue``...): a thread that runs, rather
    than waits, may be stuck in one. ``limit`` keeps the innermost ``limit`` frames.
    """
    frames: list[FrameType] = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    if user_only:
        frames = [f for f in frames if not _is_greensched(f)]
    else:
        trimmed = _is_machinery if keep_public else _is_greensched
        while frames and trimmed(frames[0]):
            del frames[0]
        while frames and trimmed(frames[-1]):
            frames.pop()
    if limit is not None:
        frames = frames[-limit:] if limit > 0 else []
    return traceback.StackSummary.extract(((f, f.f_lineno) for f in frames), lookup_lines=True)


def where(thread: GreenThread) -> str:
    """file:line of the innermost frame of ``thread`` outside greensched."""
    stack = thread_stack(thread_frame(thread), limit=1, user_only=True)
    if not stack:
        return "<unknown>"
    entry = stack[-1]
    return f"{entry.filename}:{entry.lineno} in {entry.name}"


def display_name(thread: GreenThread) -> str:
    """The name to show: a patched `threading.Thread`'s own name if the thread runs one.

    Under `patch_all`, ``threading.Thread(name="worker")`` runs in a green thread
    with a generic name; `threading` keeps the Thread under the green ident.
    """
    threading = sys.modules.get("threading")
    active = getattr(threading, "_active", None)
    if isinstance(active, dict):
        owner = active.get(thread._ident)  # one dict read: atomic, even from another OS thread
        name = getattr(owner, "name", None)
        if isinstance(name, str) and not isinstance(owner, getattr(threading, "_DummyThread", ())):
            return name
    return thread.name


def _describe(thread: GreenThread) -> str:
    """One line: name, ident, state, daemon, what it waits on."""
    daemon = ", daemon" if thread._daemon else ""
    waits = f", waits on {thread._waiting_on}" if thread._state is PARKED and thread._waiting_on else ""
    return f"green thread {display_name(thread)!r} (ident {thread._ident}, {thread._state}{daemon}{waits})"


def format_thread(thread: GreenThread, limit: int | None = None, user_only: bool = False) -> str:
    """A thread's `_describe` line and its stack (innermost last), indented."""
    head = _describe(thread)
    if thread._state is NEW or thread._glet is None:
        return f"{head}\n    (not started yet: no stack)\n"
    stack = thread_stack(thread_frame(thread), limit, user_only)
    if not stack:
        return f"{head}\n    (no Python frames outside greensched)\n"
    body = "".join("  " + line for entry in stack.format() for line in entry.splitlines(True))
    return f"{head}\n{body}"


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


def deadlock_message(hub: Hub) -> str:
    """What `DeadlockError` says: each parked thread, what it waits on, where (bounded)."""
    threads = list(hub._threads.values())
    lines = ["every green thread is parked and nothing can wake one:"]
    for n, thread in enumerate(threads[:_DEADLOCK_THREADS]):
        lines.append(f"  {display_name(thread)!r} waits on {thread._waiting_on or thread._state} "
                     f"at {where(thread)}")
        if n < _DEADLOCK_STACKS:
            stack = thread_stack(thread_frame(thread), _DEADLOCK_FRAMES, user_only=True)
            lines.extend("    " + line for entry in stack.format() for line in entry.rstrip().splitlines())
    if len(threads) > _DEADLOCK_THREADS:
        lines.append(f"  ... and {len(threads) - _DEADLOCK_THREADS} more green threads")
    lines.append("(is a lock never released, an event never set, or a join on a thread "
                 "that waits for the joiner?)")
    return "\n".join(lines)


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
            ticks=p.ticks,
            preemption_requests=p.requests,
            preemptions=p.preemptions,
            call_preemptions=p.call_preemptions,
            stuck_preemptions=p.stuck_preemptions,
            retried_requests=p.retried,
            deferred_requests=p.deferred_requests,
            timer_starts=p.timer_starts,
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
