"""Green `multiprocessing`: a pool's, a queue's and a manager's waits park green threads.

Under ``patch_all()`` the helper threads of ``multiprocessing`` (a `Pool`'s task,
result and worker handlers, a `Queue`'s feeder, a manager's server threads) are
green threads already. What blocked the OS thread, and every green thread with it,
are three kinds of wait, replaced here:

* ``Connection`` reads and writes (``recv``, ``recv_bytes``, ``send``...): the
  stdlib calls a blocking ``os.read``/``os.write`` on a pipe or a socket. A
  `Pool`'s result handler sat in that read forever, so ``Pool.map`` hung. Now
  each read waits on the netpoller for the fd to be readable first, and each write
  for it to be writable (a pipe's write goes in chunks of at most ``PIPE_BUF``
  bytes, which a writable pipe takes without blocking). The fds stay in blocking
  mode: they are shared with child processes, which may not be green.
* ``multiprocessing.connection.wait`` (and so ``Connection.poll``, process
  sentinels, a pool's worker handler): its selector becomes greensched's.
* The process-shared semaphores behind ``multiprocessing.Lock``, ``RLock``,
  ``Semaphore``, ``Condition``, ``Event`` and a `Queue`'s locks: no fd to wait on,
  so while other green threads exist an acquire that would block polls instead,
  sleeping green between tries (0.1 ms, doubling up to 5 ms). A green thread alone
  in its process blocks for real, as before: there is nobody to hand the CPU to.

Not green: a read of a pipe that another *process* drains at the same moment (a
`SimpleQueue` read by both a parent green thread and a child): after the fd turned
readable the other process may take the bytes first and our read blocks until
more come; `multiprocessing`'s own locks serialise its readers, so its queues and
pools never do this. Starting processes (``fork``, ``spawn``'s exec, the
forkserver's hand-shake) runs as it does unpatched; it is short.
"""

from __future__ import annotations

import io
import os as _os
import stat as _stat
from typing import Any

from .._core._hub import clock_now, get_hub
from ..scheduler import sleep, wait_readable, wait_writable
from ._registry import patch_attr

__all__ = ["patch", "green_semlock_acquire"]

__implements__ = ["Connection._recv", "Connection._send", "connection._WaitSelector",
                  "synchronize.SemLock"]

_PIPE_BUF = getattr(_os, "PIPE_BUF", None) or 4096
#: A socket that polls writable has room for this much (a quarter of a small buffer).
_SOCKET_CHUNK = 16384
_POLL_FIRST = 0.0001
_POLL_MAX = 0.005


def _chunk_for(fd: int) -> int:
    try:
        return _PIPE_BUF if _stat.S_ISFIFO(_os.fstat(fd).st_mode) else _SOCKET_CHUNK
    except OSError:
        return _PIPE_BUF


# The replacements carry the names of what they replace (`Connection._recv`...):
# tracebacks, pickling by name and tests/monkey/test_class_behaviour.py read them.


def _recv(self: Any, size: int, read: Any = _os.read) -> io.BytesIO:
    """`Connection._recv`, green: read exactly ``size`` bytes, parking until each part is there."""
    buf = io.BytesIO()
    handle = self._handle
    remaining = size
    while remaining > 0:
        wait_readable(handle)
        try:
            chunk = read(handle, remaining)
        except BlockingIOError:  # a non-blocking fd (a detached green socket), or raced
            continue
        n = len(chunk)
        if n == 0:
            if remaining == size:
                raise EOFError
            raise OSError("got end of file during message")
        buf.write(chunk)
        remaining -= n
    return buf


def _send(self: Any, buf: Any, write: Any = _os.write) -> None:
    """`Connection._send`, green: write all of ``buf``, parking until the fd can take each part."""
    handle = self._handle
    view = memoryview(buf).cast("B")
    blocking = _os.get_blocking(handle)
    chunk = _chunk_for(handle) if blocking else len(view)
    while view:
        wait_writable(handle)
        try:
            n = write(handle, view[:chunk])
        except BlockingIOError:
            continue
        view = view[n:]


def green_semlock_acquire(semlock: Any, block: bool = True, timeout: float | None = None) -> bool:
    """Acquire a process-shared semaphore without blocking the other green threads."""
    if semlock.acquire(False):
        return True
    if not block:
        return False
    if len(get_hub()._threads) < 2:
        # Alone in this process (a pool worker, say): nobody else to run; block for real.
        return bool(semlock.acquire(True, timeout))
    deadline = None if timeout is None else clock_now() + max(timeout, 0.0)
    pause = _POLL_FIRST
    while True:
        if deadline is not None:
            left = deadline - clock_now()
            if left <= 0:
                return bool(semlock.acquire(False))
            pause = min(pause, left)
        sleep(pause)
        if semlock.acquire(False):
            return True
        pause = min(pause * 2, _POLL_MAX)


def _make_methods(self: Any) -> None:
    """`multiprocessing.synchronize.SemLock._make_methods`, with a green acquire."""
    semlock = self._semlock

    def acquire(block: bool = True, timeout: float | None = None) -> bool:
        return green_semlock_acquire(semlock, block, timeout)

    self.acquire = acquire
    self.release = semlock.release


class _GreenSemLock:
    """Holds the green `SemLock.__enter__` (a class, so the method keeps its name)."""

    def __enter__(self: Any) -> bool:
        return green_semlock_acquire(self._semlock)


def patch(selectors: bool = True) -> None:
    """Install the green Connection reads and writes, wait() selector and semaphore acquire."""
    import multiprocessing.connection as connection

    patch_attr(connection.Connection, "_recv", _recv, owner="multiprocessing.connection.Connection")
    patch_attr(connection.Connection, "_send", _send, owner="multiprocessing.connection.Connection")
    if selectors and hasattr(connection, "_WaitSelector"):
        from ..net import select as green_select

        patch_attr(connection, "_WaitSelector", green_select.PollSelector)
    try:
        import multiprocessing.synchronize as synchronize
    except ImportError:  # no working sem_open here: multiprocessing has no locks to patch
        return
    patch_attr(synchronize.SemLock, "_make_methods", _make_methods,
               owner="multiprocessing.synchronize.SemLock")
    patch_attr(synchronize.SemLock, "__enter__", _GreenSemLock.__enter__,
               owner="multiprocessing.synchronize.SemLock")
