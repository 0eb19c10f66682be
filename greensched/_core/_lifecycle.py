"""A hub's ends: the program's exit, a fork, and the end of the hub's OS thread.

A mixin of `Hub` (`_hub.py`), kept apart so that the hub's module stays about the
run queue and THE loop. What a threaded program does at each of these, a green one
does too:

* **Exit** (`_at_exit`, registered with `atexit` by the main OS thread's hub): wait
  for the non-daemon threads, as the interpreter waits for non-daemon OS threads;
  then stop the preemption timer. Threads that can never finish make that wait a
  deadlock, which is reported (once) instead of hanging the exit.
* **Fork** (`_after_fork_in_child`): in the child only the forking thread lives on.
  The others are marked done without running another line, and the netpoller,
  whose epoll set and wake-up pipe the child would share with its parent, is
  replaced.
* **The OS thread ends** (`ClosedWithThread`): the hub's file descriptors are
  closed with it.
"""

from __future__ import annotations

import _thread
import os
import sys
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _local
from ._errors import DeadlockError
from ._greenthread import GreenThread
from ._netpoll import Netpoller
from ._waitqueue import WaitQueue

if TYPE_CHECKING:
    from ._preempt import Preemptor

__all__ = ["Lifecycle", "ClosedWithThread"]

# The OS-level original, captured before `patch_all()` can make `_thread` green.
_os_thread_ident = _thread.get_ident


class Lifecycle:
    """`run`, exit and fork for `Hub`, which supplies what is below."""

    os_thread_id: int
    main: GreenThread
    current: GreenThread | None
    preemptor: Preemptor | None
    _netpoll: Netpoller
    _ready: deque[GreenThread]
    _woken: deque[GreenThread]
    _yielded: list[GreenThread]
    _calls: deque[tuple[Callable[[Any], None], Any]]
    _external: int
    _threads: dict[int, GreenThread]
    _all_done: WaitQueue
    _fork_orphans: list[Any]
    _deadlock_raised: bool

    if TYPE_CHECKING:  # `Parking`'s, in the hub
        def current_thread_for_park(self) -> GreenThread: ...

    def run(self) -> None:
        """Park the caller until every other green thread has finished.

        Called from a thread other than main, that includes main, which finishes
        only when the program does: call it from the main thread.
        """
        self.current_thread_for_park()
        while len(self._threads) > 1:  # the caller is the one left
            self._all_done.park()

    def _at_exit(self) -> None:
        """Like a threaded program: wait for non-daemon threads, then stop ticking.

        Non-daemon threads that can never finish make that wait a deadlock. A program
        that died of a `DeadlockError` has had the report already (the same threads,
        parked where they were), so it is not printed again; otherwise it is printed
        once, and the program ends all the same (with OS threads it would hang).
        """
        try:
            if self.current is self.main and _os_thread_ident() == self.os_thread_id:
                already_told = self._deadlock_raised
                try:
                    self.join_non_daemon()
                except DeadlockError as exc:
                    if not already_told and sys.stderr is not None:
                        sys.stderr.write(
                            f"greensched: the program ended, but its non-daemon green threads "
                            f"can never finish, so they were not waited for: {exc}\n")
        finally:
            if self.preemptor is not None:
                self.preemptor.shutdown()

    def _after_fork_in_child(self) -> None:
        """In a forked child only the forking green thread lives on, as with OS threads.

        The others are marked done without running another line (no ``finally``):
        they belong to the parent. Their greenlets are kept referenced so the
        garbage collector never resumes them to throw GreenletExit. The netpoller's
        epoll set and wake-up pipe are shared with the parent, so they are replaced.
        """
        if _os_thread_ident() != self.os_thread_id:
            return  # this hub's OS thread does not exist in the child
        me = self.current
        self._netpoll = Netpoller()
        self._ready.clear()
        self._yielded.clear()
        self._woken.clear()
        self._calls.clear()
        self._external = 0
        if me is None:
            return
        for thread in list(self._threads.values()):
            if thread is not me:
                self._fork_orphans.append(thread._glet)
                thread._killed = True
                thread._finish()
        self.main = me

    def join_non_daemon(self) -> None:
        """Wait for every non-daemon thread (what the interpreter does at exit)."""
        me = self.current
        for thread in list(self._threads.values()):
            if thread is not me and thread is not self.main and not thread.daemon:
                thread.join()


class ClosedWithThread:
    """Kept in the OS thread's locals: when the thread ends, its hub's fds are closed.

    A hub's own greenlet keeps the hub alive after its OS thread is gone (greenlet
    frees such greenlets lazily), so its selector and wake-up pipe would leak.
    """

    __slots__ = ("hub",)

    def __init__(self, hub: Lifecycle) -> None:
        self.hub = hub

    def __del__(self) -> None:
        self.hub._netpoll.close()


def _after_fork_in_child() -> None:
    """Only the forking OS thread exists in a child: tell its hub, if it has one."""
    hub = _local.existing_hub()
    if hub is not None:
        hub._after_fork_in_child()


# One registration for the module, not one per hub: a registration would keep every
# hub (and its selector and pipe) alive after its OS thread ended.
os.register_at_fork(after_in_child=_after_fork_in_child)
