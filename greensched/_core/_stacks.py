"""Green threads' stacks: where each one is, what it waits on, and the deadlock report.

Split from `_introspect` so that the hub, which needs the deadlock report, does not
import the module that reads the hub (imports point one way: introspection → hub →
this → thread). Everything here only *reads* a thread and never switches, so it is
safe to call from anywhere: a green thread, the hub itself, or another OS thread.

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
import sys
import traceback
from types import FrameType

from ._greenthread import NEW, PARKED, GreenThread

__all__ = [
    "thread_frame", "thread_stack", "where", "display_name", "describe", "format_thread",
    "deadlock_message",
]

_os_thread_ident = _thread.get_ident

#: Frames of these modules at either end of a stack are greensched's machinery.
_MACHINERY = ("greensched._core.", "greensched.monitor")

#: A deadlock report shows this many threads' stacks, each this many frames deep.
_DEADLOCK_STACKS = 20
_DEADLOCK_FRAMES = 10
#: ... and lists at most this many threads at all.
_DEADLOCK_THREADS = 200


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


def describe(thread: GreenThread) -> str:
    """One line: name, ident, state, daemon, what it waits on."""
    daemon = ", daemon" if thread._daemon else ""
    waits = f", waits on {thread._waiting_on}" if thread._state is PARKED and thread._waiting_on else ""
    return f"green thread {display_name(thread)!r} (ident {thread._ident}, {thread._state}{daemon}{waits})"


def format_thread(thread: GreenThread, limit: int | None = None, user_only: bool = False) -> str:
    """A thread's `_describe` line and its stack (innermost last), indented."""
    head = describe(thread)
    if thread._state is NEW or thread._glet is None:
        return f"{head}\n    (not started yet: no stack)\n"
    stack = thread_stack(thread_frame(thread), limit, user_only)
    if not stack:
        return f"{head}\n    (no Python frames outside greensched)\n"
    body = "".join("  " + line for entry in stack.format() for line in entry.splitlines(True))
    return f"{head}\n{body}"


def deadlock_message(threads: list[GreenThread]) -> str:
    """What `DeadlockError` says: each of ``threads``, what it waits on, where (bounded)."""
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
