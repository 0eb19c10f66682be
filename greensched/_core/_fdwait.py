"""Waiting on file descriptors: the part of the hub that talks to the netpoller.

A mixin of `Hub` (`_hub.py`), kept apart so that the hub's module stays about the
run queue and THE loop. Two ways to wait:

* `wait_readable`/`wait_writable`: one *exclusive* reader and one writer per fd (a
  socket's recv and send). A second reader is a clear error, never a lost wake-up.
  With an ``owner`` (a green socket or pipe) the fd stays registered between waits.
* `wait_fds`: *watchers*, any number per fd, as ``select``/``poll`` need: a ready fd
  wakes them all, and the caller looks again to see which one it was.

Either way a wait is a park whose token the netpoller hands back when the fd is
ready; a timeout, a kill or a `Timeout` leaves nothing registered.
`notify_fd_closed` wakes everyone waiting on an fd that is about to be closed.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._netpoll import EVENT_READ, EVENT_WRITE, Netpoller
from ._parking import TIMED_OUT, ParkToken

__all__ = ["FdWaits"]


class FdWaits:
    """The fd waits of `Hub`; it supplies the netpoller, `park` and `unpark`."""

    _netpoll: Netpoller

    if TYPE_CHECKING:  # the park protocol (`_parking`), which the hub implements
        def prepare_park(self) -> ParkToken: ...
        def park(self, token: ParkToken, reason: str, timeout: float | None = None) -> Any: ...
        def unpark(self, token: ParkToken, value: Any = True, now: float | None = None) -> bool: ...

    def wait_readable(self, fd: int, timeout: float | None = None, owner: Any = None) -> bool:
        """Park until ``fd`` is readable (True) or ``timeout`` passes (False).

        ``owner``: the (weakly referenceable) object holding ``fd``, whose
        ``fileno()`` is ``fd`` and which calls `notify_fd_closed` before closing
        it, such as a green socket; the fd then stays registered with the
        netpoller between its waits (see `_netpoll`).
        """
        return self.wait_fd(fd, EVENT_READ, timeout, owner)

    def wait_writable(self, fd: int, timeout: float | None = None, owner: Any = None) -> bool:
        """Park until ``fd`` is writable (True) or ``timeout`` passes (False); see `wait_readable`."""
        return self.wait_fd(fd, EVENT_WRITE, timeout, owner)

    def wait_fd(self, fd: int, event: int, timeout: float | None = None, owner: Any = None,
                token: ParkToken | None = None) -> bool:
        """`wait_readable` (``event`` EVENT_READ) or `wait_writable` (EVENT_WRITE), for
        callers that choose the event at run time (the green socket: one call fewer).

        ``token``: the caller's own `prepare_park` token for this wait, for a caller
        that may also end it early with ``unpark(token, True)`` (the asyncio selector's
        ``wakeup``); the wait then returns True, as if the fd were ready.
        """
        if token is None:
            token = self.prepare_park()
        if timeout is not None and timeout <= 0:
            return False
        self._netpoll.add_waiter(fd, event, token, owner)  # checks fd and event
        try:
            reason = _fd_reasons[event].get(fd) or _fd_reason(fd, event)
            value = self.park(token, reason, timeout)
        finally:
            self._netpoll.remove_waiter(fd, event, token)
        if isinstance(value, BaseException):
            raise value
        return value is not TIMED_OUT

    def wait_fds(self, readers: Iterable[Any], writers: Iterable[Any],
                 timeout: float | None = None, token: ParkToken | None = None) -> bool:
        """Park until any fd of ``readers`` is readable or any of ``writers`` writable.

        Returns True when one is ready (an error or hang-up counts as ready), False
        when ``timeout`` seconds pass first; None waits forever, and ``timeout <= 0``
        returns False at once without looking: check readiness yourself (a
        zero-timeout ``select``) before parking, and again after, since this does not
        say which fd woke it. An fd is an int or an object with ``fileno()``.

        Unlike `wait_readable`/`wait_writable` this only *watches*: any number of green
        threads may watch one fd at once, next to its exclusive reader and writer, and
        a ready fd wakes them all. The fds are checked as ``select.select`` checks them,
        before parking: `TypeError` for an object with no ``fileno()``, `ValueError`
        for a negative fd, `OSError` (EBADF) for a closed one; nothing stays
        registered then. An fd the netpoller cannot watch because it is always ready
        (epoll refuses regular files with EPERM) returns True at once. A watched fd
        closed with `notify_fd_closed` meanwhile raises `OSError` (EBADF). Killed, or
        interrupted by a `Timeout`, it leaves nothing registered. ``token``: as for
        `wait_fd`.
        """
        if token is None:
            token = self.prepare_park()
        rfds = list(dict.fromkeys(map(_as_fd, readers)))
        wfds = list(dict.fromkeys(map(_as_fd, writers)))
        if timeout is not None and timeout <= 0:
            return False
        netpoll = self._netpoll
        watched: list[tuple[int, int]] = []
        always_ready = False
        value: Any = TIMED_OUT
        try:
            for fds, event in ((rfds, EVENT_READ), (wfds, EVENT_WRITE)):
                for fd in fds:
                    # Listed first: removing a watcher that was never added is a no-op,
                    # so an exception landing anywhere here leaves nothing behind.
                    watched.append((fd, event))
                    try:
                        netpoll.add_watcher(fd, event, token)
                    except PermissionError as exc:
                        if exc.errno != errno.EPERM:
                            raise
                        always_ready = True  # poll(2): a file with no poll support is always ready
            if always_ready:
                return True
            value = self.park(token, _wait_fds_reason(rfds, wfds), timeout)
        finally:
            for fd, event in watched:
                netpoll.remove_watcher(fd, event, token)
        if isinstance(value, BaseException):
            raise value
        return value is not TIMED_OUT

    def notify_fd_closed(self, fd: int) -> None:
        """Call before closing a watched fd: its waiters get `OSError(EBADF)`."""
        for token in self._netpoll.close_fd(fd):
            self.unpark(
                token,
                OSError(errno.EBADF, f"file descriptor {fd} was closed while this green thread waited on it"),
            )


#: "fd 7 readable", the park reason of a wait per event and fd: made once, as an
#: f-string per wait costs about 1 % of a TCP echo. fd numbers are reused from the
#: lowest, so this holds about as many as the process had fds open at once.
_fd_reasons: dict[int, dict[int, str]] = {EVENT_READ: {}, EVENT_WRITE: {}}


def _fd_reason(fd: int, event: int) -> str:
    """The first wait for ``event`` on ``fd``: make its reason, and keep it."""
    reason = _fd_reasons[event][fd] = f"fd {fd} {'readable' if event == EVENT_READ else 'writable'}"
    return reason


_NO_FILENO: Any = object()


def _as_fd(obj: Any) -> int:
    """The fd of an int or of an object with ``fileno()``, checked as ``select.select`` does."""
    if isinstance(obj, int):
        fd = obj
    else:
        fileno = getattr(obj, "fileno", _NO_FILENO)
        if fileno is _NO_FILENO:
            raise TypeError("argument must be an int, or have a fileno() method.")
        fd = fileno()
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
    if not -0x80000000 <= fd <= 0x7FFFFFFF:
        raise OverflowError("Python int too large to convert to C int")
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return int(fd)


def _wait_fds_reason(readers: list[int], writers: list[int]) -> str:
    """What a thread in `Hub.wait_fds` waits on, for deadlock reports (kept short)."""

    def show(fds: list[int]) -> str:
        return ", ".join(map(str, fds[:8])) + (f", ... ({len(fds)} fds)" if len(fds) > 8 else "")

    return f"fds readable [{show(readers)}] or writable [{show(writers)}]"
