"""Python 3.13 and later: a thread's end is its handle marked done.

3.13 starts `threading`'s threads with ``_thread.start_joinable_thread``, which
returns a ``_ThreadHandle``; ``Thread.join`` waits on the handle, and at exit
``_thread._shutdown`` joins the handles of the non-daemon threads. The green
`ThreadHandle` is an ident and a green `Event`, and `thread_shutdown` joins the
non-daemon green threads before the stdlib's own shutdown waits for the OS ones.
(3.11 and 3.12 use sentinel locks instead: `_thread_sentinels`.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import sync as _green_sync
from ._thread_start import get_ident, start_thread

__all__ = ["ThreadHandle", "make_thread_handle", "set_original_shutdown",
           "start_joinable_thread", "thread_shutdown"]


class ThreadHandle:
    """`_thread._ThreadHandle` for a green thread: its ident, join, and done flag."""

    def __init__(self, ident: int | None = None) -> None:
        self.ident = ident
        self._done = _green_sync.Event()

    def is_done(self) -> bool:
        return self._done.is_set()

    def _set_done(self) -> None:
        if self.ident is None:  # the ident is set when the thread is started
            raise RuntimeError("thread not started")
        _non_daemon.discard(self)
        self._done.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the thread is done, or ``timeout`` seconds (`Thread.join` semantics)."""
        if self.ident is None:  # as the C handle refuses: nothing would ever set it done
            raise RuntimeError("thread not started")
        if self.ident == get_ident() and not self.is_done():
            raise RuntimeError("Cannot join current thread")
        self._done.wait(timeout)

    def __repr__(self) -> str:
        return f"<greensched ThreadHandle ident={self.ident} done={self.is_done()}>"


#: Handles of running non-daemon threads, which interpreter exit waits for.
_non_daemon: set[ThreadHandle] = set()


def start_joinable_thread(function: Callable[[], Any], handle: ThreadHandle | None = None,
                          daemon: bool = True) -> ThreadHandle:
    """`_thread.start_joinable_thread`, green: start ``function``; return its handle."""
    if not callable(function):
        raise TypeError("thread function must be callable")
    if handle is None:
        handle = ThreadHandle()
    elif not isinstance(handle, ThreadHandle):
        raise TypeError(f"handle must be a greensched ThreadHandle, not {type(handle).__name__} "
                        "(was threading imported before patch_all()?)")
    elif handle.ident is not None:
        raise RuntimeError("thread already started")
    if not daemon:
        _non_daemon.add(handle)
    # The ident is set before the thread first runs: it starts on the hub's next pass.
    handle.ident = start_thread(function, (), {}, handle._set_done).ident
    return handle


def make_thread_handle(ident: int) -> ThreadHandle:
    """`_thread._make_thread_handle`: a handle for a thread that is already running."""
    return ThreadHandle(ident)


def _no_shutdown() -> None:
    pass


#: `_thread._shutdown` as it was: it waits for the non-daemon OS threads.
_original_shutdown: Callable[[], None] = _no_shutdown


def set_original_shutdown(shutdown: Callable[[], None]) -> None:
    """Remember the stdlib's ``_thread_shutdown``, which `thread_shutdown` calls last."""
    global _original_shutdown
    _original_shutdown = shutdown


def thread_shutdown() -> None:
    """`_thread._shutdown`, green: wait for the non-daemon green threads, then the OS ones."""
    while _non_daemon:
        handle = _non_daemon.pop()
        if handle.ident != get_ident():
            handle.join()
    _original_shutdown()
