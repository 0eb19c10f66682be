"""The public face of the runtime: spawn, sleep, run, preemption settings, fd waits.

Thin functions over this OS thread's hub (`greensched._core`), for users and for
greensched's own higher layers. Nothing here holds state of its own. `stats()` and
the other ways of looking inside live in `greensched.monitor`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._core import _preempt
from ._core._clock import Clock
from ._core._hub import current_thread, get_hub, sleep, spawn
from ._core._preempt import NoPreempt

__all__ = [
    "spawn", "sleep", "run", "current_thread", "no_preempt", "set_preemption",
    "get_preemption", "set_clock", "get_clock", "wait_readable", "wait_writable", "wait_fds",
    "notify_fd_closed",
]


def run() -> None:
    """Park the calling green thread until every other green thread has finished."""
    get_hub().run()


def set_clock(clock: Clock | None) -> None:
    """Measure this OS thread's green-wait deadlines on ``clock`` (None: real time again).

    For tests: pass a `greensched.testing.MockClock`. Raises `RuntimeError` if a
    timer (a sleep, a timeout, a ``call_later``) is pending, as its deadline belongs to
    the old clock. ``time.monotonic()`` and preemption stay on real time.
    """
    get_hub().set_clock(clock)


def get_clock() -> Clock:
    """The clock this OS thread's hub measures green-wait deadlines on."""
    return get_hub().clock


def no_preempt() -> NoPreempt:
    """``with no_preempt():`` — the block is not preempted (it may still park).

    A preemption request that arrives inside is honoured when the block ends. Use it
    for short sections that must not interleave with other green threads, such as
    updating several plain variables together; use a `Lock` for anything that waits.
    """
    return _preempt.no_preempt(get_hub().preemptor)


def set_preemption(enabled: bool | None = None, slice_ms: float | None = None,
                   granularity_ms: float | None = None) -> None:
    """Turn preemption on or off and/or set its times, for this process's main hub.

    ``slice_ms``: how long a thread runs before it yields to another ready one.
    ``granularity_ms``: how long it runs before a sleeper that fell due, or a socket
    that became ready, preempts it (wake-up preemption; at most the slice). The
    defaults come from ``GREENSCHED_PREEMPT`` (``0`` turns it off),
    ``GREENSCHED_SLICE_MS`` (default 10) and ``GREENSCHED_GRANULARITY_MS`` (default
    1). Each value is checked before anything changes. Only the main OS thread can
    be preempted: calling this from another OS thread raises `RuntimeError`.
    """
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(
            f"set_preemption(enabled=...) takes True, False or None, not {enabled!r}; "
            f"set the slice with set_preemption(slice_ms=...)"
        )
    preemptor = get_hub().preemptor
    if preemptor is None:
        raise RuntimeError(
            "preemption only exists in the main OS thread (only it runs signal handlers); "
            "call set_preemption() from the main thread"
        )
    preemptor.configure(enabled, slice_ms, granularity_ms)


def get_preemption() -> tuple[bool, float]:
    """``(enabled, slice_ms)`` of the main hub; ``(False, 0.0)`` in other OS threads.

    The granularity in use is ``stats()["granularity_ms"]``.
    """
    preemptor = get_hub().preemptor
    if preemptor is None:
        return False, 0.0
    return preemptor.enabled, preemptor.slice * 1000.0


def wait_readable(fd: int, timeout: float | None = None) -> bool:
    """Park until ``fd`` is readable (True) or ``timeout`` seconds pass (False)."""
    return get_hub().wait_readable(fd, timeout)


def wait_writable(fd: int, timeout: float | None = None) -> bool:
    """Park until ``fd`` is writable (True) or ``timeout`` seconds pass (False)."""
    return get_hub().wait_writable(fd, timeout)


def wait_fds(readers: Iterable[Any], writers: Iterable[Any] = (),
             timeout: float | None = None) -> bool:
    """Park until any of ``readers`` is readable or ``writers`` writable (True), or timeout.

    Only watches: any number of green threads may watch one fd. It does not say
    which fd is ready; look with a zero-timeout ``select`` before and after.
    """
    return get_hub().wait_fds(readers, writers, timeout)


def notify_fd_closed(fd: int) -> None:
    """Call just before closing ``fd``: green threads waiting on it get `OSError(EBADF)`."""
    get_hub().notify_fd_closed(fd)
