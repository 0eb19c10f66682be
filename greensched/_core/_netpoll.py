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
* At most one reader and one writer per fd: two green threads reading one socket
  would race for the same bytes, so the second gets a clear error instead of a
  silently lost wake-up.
* The wake-up pipe lets other OS threads (and signal handlers running while the
  hub sleeps in ``select``) interrupt `poll`; it is drained on every wake.
* Besides its exclusive reader and writer, an fd may have any number of
  *watchers* per event (`add_watcher`): tokens that only want to know that the fd
  is ready, as ``select()`` and ``poll()`` callers do. Watchers consume nothing, so
  several of them (and an exclusive waiter) may wait on one fd at once; all are
  woken. The selector watches at least the union of every waiter's event.

Registrations outlive waits (lazy deregistration). A socket that waits to read,
reads, and waits again would otherwise pay two ``epoll_ctl`` calls (and the
`selectors` bookkeeping around them) per wait: about 13 % of a TCP echo. So when
a waiter leaves, the fd stays registered, and is narrowed (or unregistered) only
when the selector reports an event nobody waits for any more, as libev's epoll
backend (gevent) and Go's netpoller do. Two hazards come with it:

* Level-triggered readiness with no waiter would make every poll return at once:
  `poll` narrows the fd's mask to what is still waited for (unregistering it when
  nothing is) the first time it reports such an event, so it costs one poll.
* An fd number outlives its file. The kernel drops a closed fd from the epoll set
  only when the last reference to its open file description goes (a ``dup``, a
  forked child), and a new file may get the same number: a registration kept for
  the old file is then silent for the new one, or reports the old one's events.
  So a registration is kept across waits only for an *owner* (the waiter's
  ``owner`` argument: the green socket, the green pipe) that promises to call
  `close_fd` before its fd is closed; a wait on behalf of another owner, or of
  none (a bare fd, ``select()``), registers the file afresh, and without an owner
  the fd is unregistered as soon as its last waiter leaves, as before. An owner is
  held weakly, and has a ``fileno()``. One collected without ``close()`` had its
  fd closed by its finalizer, and one closed from another OS thread told that
  thread's hub, not ours: both behind our back. An event for such a registration
  (its owner gone, or its ``fileno()`` changed) means that the file lives on
  elsewhere and that the kernel keeps reporting it under a number we can no longer
  unregister, so `poll` rebuilds the selector from the fds still waited on; so does
  a new wait on that number. (The green socket notifies from its ``__del__`` too,
  so only a collection in another OS thread gets that far.)
* A forked child shares its parent's epoll set, kept registrations and all: the
  child's hub makes a fresh netpoller and never polls or changes the inherited one
  again (narrowing an fd there would unregister it in the parent).
"""

from __future__ import annotations

import errno
import os
import select
import selectors
import weakref
from collections.abc import Callable
from typing import Any

from ._errors import FdBusyError

__all__ = ["Netpoller", "EVENT_READ", "EVENT_WRITE"]

#: The stdlib's real selector class, captured before `patch_all()` makes the
#: stdlib's ``DefaultSelector`` green (the netpoller is what green waits park on).
_OS_SELECTOR = selectors.DefaultSelector

#: The stdlib's ``select.poll``, captured for the same reason (`ready_hint` must not park).
_OS_POLL = getattr(select, "poll", None)
_POLLIN = getattr(select, "POLLIN", 1)

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE


class _FdWaiters:
    __slots__ = ("reader", "writer", "read_watchers", "write_watchers", "waits", "registered", "owner")

    def __init__(self, owner: Any) -> None:
        self.reader: Any = None
        self.writer: Any = None
        #: Watcher tokens per event, in arrival order (a dict used as an ordered set);
        #: None until the first watcher comes, so exclusive waits allocate nothing more.
        self.read_watchers: dict[Any, None] | None = None
        self.write_watchers: dict[Any, None] | None = None
        #: How many of the above wait (a watcher of both events counts twice): nonzero
        #: exactly when `mask()` is. Kept so that a wait need not compute the mask to
        #: tell whether it is the fd's first or last.
        self.waits = 0
        #: The events the selector watches for this fd (0: not registered); a superset
        #: of `mask()` while a vouched registration waits to be narrowed by `poll`.
        self.registered = 0
        #: A weak reference to the object that vouches for the fd (calls `close_fd`
        #: before closing it), or None: then nothing is kept between waits.
        self.owner: weakref.ref[Any] | None = None if owner is None else weakref.ref(owner)

    def mask(self) -> int:
        return (EVENT_READ if self.reader is not None or self.read_watchers else 0) | (
            EVENT_WRITE if self.writer is not None or self.write_watchers else 0
        )

    def closed_unnoticed(self, fd: int) -> bool:
        """Was the file this registration was kept for closed without `close_fd`?

        Its owner was collected (its finalizer closed the fd), or its ``fileno()``
        is no longer ``fd`` (it was closed from another OS thread, whose hub was told).
        """
        if self.owner is None:
            return False
        owner = self.owner()
        if owner is None:
            return True
        try:
            return owner.fileno() != fd  # type: ignore[no-any-return]  # the owner is Any
        except (OSError, ValueError, AttributeError):
            return True  # closed, or no fileno() to tell: assume the worst

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
        #: Every fd that is registered with the selector or has a waiter.
        self._fds: dict[int, _FdWaiters] = {}
        self._waiting = 0  # how many of them have a waiter or watcher
        #: Tokens `_rebuild` could not re-register, for the next `poll` to return.
        self._orphans: list[Any] = []
        # A hub dies with its OS thread, unreferenced: its pipe must not outlive it.
        self._closer = weakref.finalize(self, _close_fds, self._wake_r, self._wake_w)

    @property
    def waiting(self) -> int:
        """How many fds have a parked waiter or watcher (kept registrations do not count)."""
        return self._waiting + len(self._orphans)

    @property
    def registered(self) -> int:
        """How many fds the selector watches (those waited on, and those kept for an owner)."""
        return sum(1 for waiters in self._fds.values() if waiters.registered)

    # -- adding waiters ----------------------------------------------------------------------

    def add_waiter(self, fd: int, event: int, token: Any, owner: Any = None) -> None:
        """Watch ``fd`` for ``event`` (EVENT_READ or EVENT_WRITE) on behalf of ``token``.

        ``owner``, if given, is the object that holds ``fd`` and calls `close_fd`
        before it closes it (a green socket): the registration is then kept after
        this wait, for its next one (see the module docstring).
        """
        _check(fd, event)
        waiters = self._record(fd, owner)
        if event == EVENT_READ:
            if waiters.reader is not None:
                raise FdBusyError(
                    f"another green thread is already waiting to read fd {fd}: two readers "
                    f"of one file would race for the same bytes; give each its own connection, "
                    f"or hand the data through a Queue"
                )
            waiters.reader = token
        else:
            if waiters.writer is not None:
                raise FdBusyError(
                    f"another green thread is already waiting to write fd {fd}: serialise "
                    f"the writers with a Lock"
                )
            waiters.writer = token
        if not waiters.registered & event:
            self._widen(fd, waiters, event, lambda: setattr(
                waiters, "reader" if event == EVENT_READ else "writer", None))
        waiters.waits += 1
        if waiters.waits == 1:
            self._waiting += 1

    def add_watcher(self, fd: int, event: int, token: Any) -> None:
        """Watch ``fd`` for ``event`` on behalf of ``token``, sharing the fd with others.

        Unlike `add_waiter`, any number of tokens may watch one fd for one event, next
        to its exclusive reader and writer; adding a token twice is a no-op. Errors
        are those of the selector (and of ``select.select``): `ValueError` for a
        negative fd, `OSError` (EBADF) for a closed one, `PermissionError` (EPERM)
        for a file epoll cannot watch (a regular file, always ready); nothing is
        left registered for ``token`` when it raises. A watcher has no owner: the
        fd is registered afresh unless others wait on it now.
        """
        _check(fd, event)
        waiters = self._record(fd, None)
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
        if not waiters.registered & event:
            self._widen(fd, waiters, event, lambda: watchers.pop(token, None))
        waiters.waits += 1
        if waiters.waits == 1:
            self._waiting += 1

    def _record(self, fd: int, owner: Any) -> _FdWaiters:
        """The record a new wait on ``fd`` for ``owner`` joins.

        A registration kept for ``owner`` is trusted as it is. One kept for another
        owner may belong to a closed file whose number was reused: it is dropped and
        the fd registered afresh; if that file was closed unnoticed, the selector is
        rebuilt instead (see the module docstring). With others waiting on the
        fd now, the wait joins them (the file is theirs), and nobody vouches for
        the fd any more.
        """
        waiters = self._fds.get(fd)
        # Unless kept for ``owner``, alive (spelt out, not a method: every wait comes here).
        if waiters is not None and (owner is None or waiters.owner is None or waiters.owner() is not owner):
            if waiters.mask():
                waiters.owner = None
            elif waiters.closed_unnoticed(fd):
                self._orphans.extend(self._rebuild())
                waiters = None
            else:
                self._forget(fd, waiters)
                waiters = None
        if waiters is None:
            waiters = self._fds[fd] = _FdWaiters(owner)
        return waiters

    def _widen(self, fd: int, waiters: _FdWaiters, event: int, undo: Callable[[], Any]) -> None:
        """A waiter for ``event`` joined ``waiters``, and the selector does not watch it
        yet: make it. If the selector refuses, ``undo()`` takes the waiter back out and
        the error propagates."""
        mask = waiters.registered | event
        try:
            if waiters.registered:
                self._modify(fd, mask, waiters)
            else:
                self._register(fd, mask, waiters)
        except BaseException:
            undo()
            self._resync(fd, waiters)
            raise
        waiters.registered = mask

    def _register(self, fd: int, mask: int, data: _FdWaiters) -> None:
        try:
            self._selector.register(fd, mask, data)
        except KeyError:
            # The selector still remembers an fd of this number: drop the stale
            # entry and register the new file.
            self._selector.unregister(fd)
            self._selector.register(fd, mask, data)

    def _modify(self, fd: int, mask: int, data: _FdWaiters) -> None:
        try:
            self._selector.modify(fd, mask, data)
        except (KeyError, FileNotFoundError):
            # KeyError: the selector forgot the fd; ENOENT: the kernel did (it was
            # closed without close_fd() and its number reused) and the failed modify
            # made the selector drop it too. Either way, watch the file there is now.
            self._register(fd, mask, data)

    def _resync(self, fd: int, waiters: _FdWaiters) -> None:
        """After the selector refused a change: record what it still watches."""
        key = self._selector.get_map().get(fd)
        waiters.registered = 0 if key is None else key.events
        if not waiters.registered and not waiters.mask():
            self._fds.pop(fd, None)

    # -- removing waiters --------------------------------------------------------------------

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
        self._left(fd, waiters)

    def remove_watcher(self, fd: int, event: int, token: Any) -> None:
        """Stop watching ``fd`` for ``token``; a no-op when it is not watching."""
        waiters = self._fds.get(fd)
        if waiters is None:
            return
        watchers = waiters.read_watchers if event == EVENT_READ else waiters.write_watchers
        if not watchers or token not in watchers:
            return
        del watchers[token]
        self._left(fd, waiters)

    def _left(self, fd: int, waiters: _FdWaiters) -> None:
        """After a waiter or watcher left: keep the registration for a live owner (`poll`
        narrows it lazily), else narrow it now, unregistering the fd if nobody waits."""
        waiters.waits -= 1
        if not waiters.waits:
            self._waiting -= 1
        owner = waiters.owner
        if owner is None or owner() is None:  # no live owner vouches for the fd: not kept
            self._narrow(fd, waiters)  # a no-op if others still wait for the same events

    def _narrow(self, fd: int, waiters: _FdWaiters) -> None:
        """Make the selector watch exactly what is waited for on ``fd``; forget an fd
        nobody waits on."""
        mask = waiters.mask()
        if not mask:
            self._forget(fd, waiters)
        elif mask != waiters.registered:
            try:
                self._selector.modify(fd, mask, waiters)
            except (OSError, ValueError, KeyError):
                pass  # the fd was closed under us; the kernel already forgot it
            self._resync(fd, waiters)

    def _forget(self, fd: int, waiters: _FdWaiters) -> None:
        """Drop ``fd``'s record and its registration (its waiters are the caller's business)."""
        if self._fds.get(fd) is waiters:
            del self._fds[fd]
        if waiters.waits:
            self._waiting -= 1
        if waiters.registered:
            waiters.registered = 0
            try:
                self._selector.unregister(fd)
            except (OSError, ValueError, KeyError):
                pass  # the fd was closed under us; the kernel already forgot it

    def close_fd(self, fd: int) -> list[Any]:
        """Forget ``fd`` (about to be closed); return the tokens that were waiting on it."""
        waiters = self._fds.get(fd)
        if waiters is None:
            return []
        self._forget(fd, waiters)
        return waiters.tokens()

    def _rebuild(self) -> list[Any]:
        """A fresh selector watching what is waited for now; return the tokens whose fd
        it cannot watch any more (they retry their syscall and meet its error).

        For a file closed behind our back whose description lives on elsewhere: the
        kernel goes on reporting it under a number we can no longer unregister. Rare
        (a kept fd closed, or its owner collected, in another OS thread), so paying
        for every fd then is fine.
        """
        old = self._selector
        self._selector = _OS_SELECTOR()
        self._selector.register(self._wake_r, EVENT_READ, None)
        old.close()
        orphans: list[Any] = []
        for fd, waiters in list(self._fds.items()):
            waiters.registered = 0
            mask = waiters.mask()
            if not mask:
                del self._fds[fd]
                continue
            try:
                self._selector.register(fd, mask, waiters)
                waiters.registered = mask
            except (OSError, ValueError):
                self._forget(fd, waiters)
                orphans.extend(waiters.tokens())
        return orphans

    # -- polling -----------------------------------------------------------------------------

    def poll(self, timeout: float | None) -> list[Any]:
        """Wait up to ``timeout`` seconds (None: forever) for readiness; return ready tokens.

        Each token is returned once; its registration is left in place for the hub to
        remove with `remove_waiter` (or `remove_watcher`) when the woken thread cleans
        up. Every watcher of a ready fd and event is returned, once even if it
        watches several fds that are ready together. An event nobody waits for any
        more narrows the fd's registration to what is still waited for.
        """
        ready, self._orphans = self._orphans, []
        seen: set[Any] | None = None  # watcher tokens already returned
        for key, events in self._selector.select(0 if ready else timeout):
            waiters = key.data
            if waiters is None:
                self._drain_wakeups()
                continue
            reader, writer = waiters.reader, waiters.writer
            # Does nobody wait for one of the events? Not when the exclusive waiters
            # claim them all (the usual case); else the mask, watchers included, tells.
            unclaimed = (events & EVENT_READ and reader is None) or (events & EVENT_WRITE and writer is None)
            if unclaimed and events & ~waiters.mask():
                if waiters.closed_unnoticed(key.fd):
                    ready.extend(self._rebuild())
                    continue  # its events, if any, come again from the new selector
                self._narrow(key.fd, waiters)
            if events & EVENT_READ and reader is not None:
                ready.append(reader)
            if events & EVENT_WRITE and writer is not None:
                ready.append(writer)
            if not (waiters.read_watchers or waiters.write_watchers):
                continue  # the usual case: exclusive waits only
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

    def ready_hint(self) -> bool | None:
        """Is any registered fd ready now? None when this selector cannot tell.

        For the preemption handler, which runs at any bytecode (see `_preempt`), so it
        reads and changes nothing here: epoll's and kqueue's own fd polls readable
        while an event is pending, and polling that fd consumes nothing (the events
        stay for the hub's next `poll`). One ``poll(2)`` with a zero timeout. A
        "yes" may be an fd kept registered that nobody waits on any more: the hub's
        next poll narrows it, so it says "yes" once.
        """
        fileno = getattr(self._selector, "fileno", None)  # select/poll selectors have none
        if fileno is None or _OS_POLL is None:
            return None
        try:
            poller = _OS_POLL()
            poller.register(fileno(), _POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return False  # closed under us (a fork, a rebuild): the hub knows better

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


def _check(fd: int, event: int) -> None:
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    if event != EVENT_READ and event != EVENT_WRITE:
        raise ValueError(f"event must be EVENT_READ or EVENT_WRITE, not {event!r}")


def _close_fds(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
