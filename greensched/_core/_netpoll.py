"""The netpoller: which file descriptors green threads wait on, over stdlib `selectors`.

It knows nothing of green threads: a waiter is an opaque token (the hub uses
``(thread, park number)``), and `poll` returns the tokens whose fd became ready.

Facts that shaped it:

* `selectors.DefaultSelector` is epoll on Linux, kqueue on the BSDs and macOS, and
  poll/select elsewhere; all we need is register/modify/unregister/select, which
  every one of them has. The selector's data slot holds our per-fd record.
* epoll reports errors and hang-ups (EPOLLERR, EPOLLHUP) whatever was asked for, and
  `selectors` maps them to both EVENT_READ and EVENT_WRITE, so a reader parked on a
  socket whose peer vanished is woken and finds out from its next syscall.
* A closed fd disappears from the kernel's epoll set by itself, but not from the
  selector's own map; a new file may get the same number. So `close_fd` must be
  called by whoever closes a watched fd (it wakes the waiters with an error), and
  registering a number the selector still remembers replaces the stale entry.
* At most one reader and one writer per fd: two green threads reading one socket
  would race for the same bytes, so the second gets a clear error instead of a
  silently lost wake-up.
* The wake-up pipe lets other OS threads (and signal handlers running while the
  hub sleeps in ``select``) interrupt `poll`; it is drained on every wake.
"""

from __future__ import annotations

import errno
import os
import selectors
from typing import Any, Optional

__all__ = ["Netpoller", "EVENT_READ", "EVENT_WRITE"]

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE


class _FdWaiters:
    __slots__ = ("reader", "writer")

    def __init__(self) -> None:
        self.reader: Any = None
        self.writer: Any = None

    def mask(self) -> int:
        return (EVENT_READ if self.reader is not None else 0) | (
            EVENT_WRITE if self.writer is not None else 0
        )


class Netpoller:
    """fd readiness for parked green threads, plus a wake-up pipe."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, EVENT_READ, None)
        self._fds: dict[int, _FdWaiters] = {}

    @property
    def waiting(self) -> int:
        """How many fds have a parked waiter."""
        return len(self._fds)

    def add_waiter(self, fd: int, event: int, token: Any) -> None:
        """Watch ``fd`` for ``event`` (EVENT_READ or EVENT_WRITE) on behalf of ``token``."""
        if fd < 0:
            raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
        waiters = self._fds.get(fd)
        new = waiters is None
        if waiters is None:
            waiters = _FdWaiters()
        if event == EVENT_READ:
            if waiters.reader is not None:
                raise RuntimeError(
                    f"another green thread is already waiting to read fd {fd}: two readers "
                    f"of one file would race for the same bytes; give each its own connection, "
                    f"or hand the data through a Queue"
                )
            waiters.reader = token
        elif event == EVENT_WRITE:
            if waiters.writer is not None:
                raise RuntimeError(
                    f"another green thread is already waiting to write fd {fd}: serialise "
                    f"the writers with a Lock"
                )
            waiters.writer = token
        else:
            raise ValueError(f"event must be EVENT_READ or EVENT_WRITE, not {event!r}")
        try:
            if new:
                self._register(fd, waiters.mask(), waiters)
            else:
                self._selector.modify(fd, waiters.mask(), waiters)
        except BaseException:
            if event == EVENT_READ:
                waiters.reader = None
            else:
                waiters.writer = None
            raise
        if new:
            self._fds[fd] = waiters

    def _register(self, fd: int, mask: int, data: _FdWaiters) -> None:
        try:
            self._selector.register(fd, mask, data)
        except KeyError:
            # The selector still remembers an fd of this number that was closed
            # without close_fd(): drop the stale entry and register the new file.
            self._selector.unregister(fd)
            self._selector.register(fd, mask, data)

    def remove_waiter(self, fd: int, event: int, token: Any) -> None:
        """Stop watching ``fd`` for ``token``; a no-op when it is no longer registered."""
        waiters = self._fds.get(fd)
        if waiters is None:
            return
        if event == EVENT_READ and waiters.reader is token:
            waiters.reader = None
        elif event == EVENT_WRITE and waiters.writer is token:
            waiters.writer = None
        else:
            return
        mask = waiters.mask()
        try:
            if mask:
                self._selector.modify(fd, mask, waiters)
            else:
                del self._fds[fd]
                self._selector.unregister(fd)
        except (OSError, ValueError, KeyError):
            pass  # the fd was closed under us; the kernel already forgot it

    def close_fd(self, fd: int) -> list[Any]:
        """Forget ``fd`` (about to be closed); return the tokens that were waiting on it."""
        waiters = self._fds.pop(fd, None)
        if waiters is None:
            return []
        try:
            self._selector.unregister(fd)
        except (OSError, ValueError, KeyError):
            pass
        return [t for t in (waiters.reader, waiters.writer) if t is not None]

    def poll(self, timeout: Optional[float]) -> list[Any]:
        """Wait up to ``timeout`` seconds (None: forever) for readiness; return ready tokens.

        Each token is returned once; its registration is left in place for the hub to
        remove with `remove_waiter` when the woken thread cleans up.
        """
        ready: list[Any] = []
        for key, events in self._selector.select(timeout):
            waiters = key.data
            if waiters is None:
                self._drain_wakeups()
                continue
            if events & EVENT_READ and waiters.reader is not None:
                ready.append(waiters.reader)
            if events & EVENT_WRITE and waiters.writer is not None:
                ready.append(waiters.writer)
        return ready

    def wakeup(self) -> None:
        """Make a concurrent or future `poll` return promptly. Safe from any OS thread."""
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: a wake-up is already pending
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Release the selector and the wake-up pipe."""
        self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
