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
* Besides its exclusive reader and writer, an fd may have any number of
  *watchers* per event (`add_watcher`): tokens that only want to know that the fd
  is ready, as ``select()`` and ``poll()`` callers do. Watchers consume nothing, so
  several of them (and an exclusive waiter) may wait on one fd at once; all are
  woken. The selector's registration is the union of every waiter's event.
"""

from __future__ import annotations

import errno
import os
import selectors
import weakref
from typing import Any, Callable, Optional

__all__ = ["Netpoller", "EVENT_READ", "EVENT_WRITE"]

#: The stdlib's real selector class, captured before `patch_all()` makes the
#: stdlib's ``DefaultSelector`` green (the netpoller is what green waits park on).
_OS_SELECTOR = selectors.DefaultSelector

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE


class _FdWaiters:
    __slots__ = ("reader", "writer", "read_watchers", "write_watchers")

    def __init__(self) -> None:
        self.reader: Any = None
        self.writer: Any = None
        #: Watcher tokens per event, in arrival order (a dict used as an ordered set);
        #: None until the first watcher comes, so exclusive waits allocate nothing more.
        self.read_watchers: Optional[dict[Any, None]] = None
        self.write_watchers: Optional[dict[Any, None]] = None

    def mask(self) -> int:
        return (EVENT_READ if self.reader is not None or self.read_watchers else 0) | (
            EVENT_WRITE if self.writer is not None or self.write_watchers else 0
        )

    def tokens(self) -> list[Any]:
        """Every token waiting here: the exclusive reader and writer, then the watchers."""
        out = dict.fromkeys(t for t in (self.reader, self.writer) if t is not None)
        for watchers in (self.read_watchers, self.write_watchers):
            if watchers:
                out.update(watchers)
        return list(out)


class Netpoller:
    """fd readiness for parked green threads, plus a wake-up pipe."""

    def __init__(self) -> None:
        self._selector = _OS_SELECTOR()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, EVENT_READ, None)
        self._fds: dict[int, _FdWaiters] = {}
        # A hub dies with its OS thread, unreferenced: its pipe must not outlive it.
        self._closer = weakref.finalize(self, _close_fds, self._wake_r, self._wake_w)

    @property
    def waiting(self) -> int:
        """How many fds have a parked waiter or watcher."""
        return len(self._fds)

    def add_waiter(self, fd: int, event: int, token: Any) -> None:
        """Watch ``fd`` for ``event`` (EVENT_READ or EVENT_WRITE) on behalf of ``token``."""
        if fd < 0:
            raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
        waiters = self._fds.get(fd)
        new = waiters is None
        if waiters is None:
            waiters = _FdWaiters()
        old_mask = waiters.mask()
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
        self._apply(fd, waiters, new, old_mask, lambda: setattr(
            waiters, "reader" if event == EVENT_READ else "writer", None))

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
        old_mask = waiters.mask()
        if event == EVENT_READ and waiters.reader is token:
            waiters.reader = None
        elif event == EVENT_WRITE and waiters.writer is token:
            waiters.writer = None
        else:
            return
        self._shrink(fd, waiters, old_mask)

    def add_watcher(self, fd: int, event: int, token: Any) -> None:
        """Watch ``fd`` for ``event`` on behalf of ``token``, sharing the fd with others.

        Unlike `add_waiter`, any number of tokens may watch one fd for one event, next
        to its exclusive reader and writer; adding a token twice is a no-op. Errors
        are those of the selector (and of ``select.select``): `ValueError` for a
        negative fd, `OSError` (EBADF) for a closed one, `PermissionError` (EPERM)
        for a file epoll cannot watch (a regular file, always ready); nothing is
        left registered for ``token`` when it raises.
        """
        if fd < 0:
            raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
        if event != EVENT_READ and event != EVENT_WRITE:
            raise ValueError(f"event must be EVENT_READ or EVENT_WRITE, not {event!r}")
        waiters = self._fds.get(fd)
        new = waiters is None
        if waiters is None:
            waiters = _FdWaiters()
        old_mask = waiters.mask()
        if event == EVENT_READ:
            if waiters.read_watchers is None:
                waiters.read_watchers = {}
            watchers = waiters.read_watchers
        else:
            if waiters.write_watchers is None:
                waiters.write_watchers = {}
            watchers = waiters.write_watchers
        if token in watchers:
            return
        watchers[token] = None
        self._apply(fd, waiters, new, old_mask, lambda: watchers.pop(token, None))

    def _apply(self, fd: int, waiters: _FdWaiters, new: bool, old_mask: int,
               undo: Callable[[], Any]) -> None:
        """Make the selector watch ``waiters.mask()`` on ``fd``; if it refuses, ``undo()``."""
        mask = waiters.mask()
        try:
            if new:
                self._register(fd, mask, waiters)
            elif mask != old_mask:
                self._modify(fd, mask, waiters)
        except BaseException:
            undo()
            raise
        if new:
            self._fds[fd] = waiters

    def _modify(self, fd: int, mask: int, data: _FdWaiters) -> None:
        try:
            self._selector.modify(fd, mask, data)
        except KeyError:
            # A failed modify made the selector forget the fd; register it afresh.
            self._register(fd, mask, data)
        except FileNotFoundError:
            # ENOENT: the kernel forgot the fd (it was closed without close_fd() and
            # its number reused); the selector dropped it too. Watch the new file.
            self._register(fd, mask, data)

    def remove_watcher(self, fd: int, event: int, token: Any) -> None:
        """Stop watching ``fd`` for ``token``; a no-op when it is not watching."""
        waiters = self._fds.get(fd)
        if waiters is None:
            return
        watchers = waiters.read_watchers if event == EVENT_READ else waiters.write_watchers
        if not watchers or token not in watchers:
            return
        old_mask = waiters.mask()
        del watchers[token]
        self._shrink(fd, waiters, old_mask)

    def _shrink(self, fd: int, waiters: _FdWaiters, old_mask: int) -> None:
        """After a waiter or watcher left: narrow ``fd``'s mask, or forget the fd."""
        mask = waiters.mask()
        if mask == old_mask:
            return  # someone else still waits for the same events: no syscall
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
        return waiters.tokens()

    def poll(self, timeout: Optional[float]) -> list[Any]:
        """Wait up to ``timeout`` seconds (None: forever) for readiness; return ready tokens.

        Each token is returned once; its registration is left in place for the hub to
        remove with `remove_waiter` (or `remove_watcher`) when the woken thread cleans
        up. Every watcher of a ready fd and event is returned, once even if it
        watches several fds that are ready together.
        """
        ready: list[Any] = []
        seen: Optional[set[Any]] = None  # watcher tokens already returned
        for key, events in self._selector.select(timeout):
            waiters = key.data
            if waiters is None:
                self._drain_wakeups()
                continue
            if events & EVENT_READ and waiters.reader is not None:
                ready.append(waiters.reader)
            if events & EVENT_WRITE and waiters.writer is not None:
                ready.append(waiters.writer)
            for event, watchers in ((EVENT_READ, waiters.read_watchers),
                                    (EVENT_WRITE, waiters.write_watchers)):
                if watchers and events & event:
                    if seen is None:
                        seen = set()
                    for token in watchers:
                        if token not in seen:
                            seen.add(token)
                            ready.append(token)
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
        self._closer()


def _close_fds(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
