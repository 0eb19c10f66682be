"""Green pipe files: `io` file objects over a pipe whose reads and writes park.

Why this exists. A pipe read through an ordinary file (``proc.stdout.readline()``)
blocks the whole OS thread, and so every green thread on it; worse, the read sits
inside the C code of a buffered file, which greensched's preemptor must never
switch away from (that code holds the file's lock), so not even preemption helps.
The cure is the one the green socket uses: make the descriptor non-blocking, try
the syscall, and when it fails with `BlockingIOError` park the green thread on
the hub's netpoller until the fd is ready, then try again.

The layers are the stdlib's own, so everything above the raw file behaves exactly
as ``io.open`` makes it:

* `PipeIO` is the raw file (an `io.RawIOBase`, the counterpart of `io.FileIO`).
  ``readinto`` returns as soon as some bytes are there, 0 at end of file (the
  writer closed its end). ``write`` writes *everything* before it returns, parking
  as often as the pipe is full: a blocking ``write(2)`` on a pipe does the same,
  and callers of unbuffered files (``Popen(bufsize=0)``, ``communicate()``'s fast
  path) ignore the count it returns.
* `BufferedPipeReader` / `BufferedPipeWriter` are `io.BufferedReader` /
  `io.BufferedWriter` (the C classes, unchanged but for ``close``), and
  `TextPipeWrapper` is an `io.TextIOWrapper`; ``readline``, iteration, decoding
  and universal newlines are the stdlib's C code, calling down into `PipeIO`.

Parking inside the C buffered code is safe (greenlet keeps its C stack), but that
code holds the file's lock, keyed by OS thread, while it waits. Hence the rules:

* One green thread at a time per file object, as for a socket: a second green
  thread reading (or writing) the same object while the first is parked in it gets
  ``RuntimeError: reentrant call inside <BufferedPipeReader ...>`` from CPython.
  Share a pipe between green threads through a `Queue`, or serialise them with a
  `Lock`.
* ``close()`` is the exception, because it is how one thread stops another's wait:
  called while another green thread is parked in the file, it closes the raw file
  at once (the buffered layer would need its lock) and that thread gets
  ``OSError(EBADF)`` promptly; whatever a parked writer had not written yet is
  dropped. `PipeIO.close` always tells the hub (``notify_fd_closed``) before
  ``os.close``, so no waiter is left parked on a dead descriptor.

O_NONBLOCK lives on the *open file description*, which a child process shares when
it inherits the descriptor. `PipeIO` sets it on the fd it is given, and only that
one: give it the parent's end of a pipe, never the end a child will use. Passing a
green pipe to a child (``Popen(..., stdin=other.stdout)``) needs a blocking twin of
the description: `reopen_blocking` makes one through ``/proc/self/fd`` (Linux),
which `greensched.subprocess.Popen` does for you.

Nothing here patches anything. Used directly, over any pipe or FIFO::

    from greensched.fileobject import open_pipe
    r, w = os.pipe()
    reader, writer = open_pipe(r, "r", encoding="utf-8"), open_pipe(w, "w", encoding="utf-8")
"""

from __future__ import annotations

import fcntl
import io
import os
import stat
import warnings
import weakref
from typing import Any

from ._core._hub import existing_hub, get_hub

__all__ = [
    "PipeIO", "BufferedPipeReader", "BufferedPipeWriter", "TextPipeWrapper", "open_pipe",
    "wrap_buffered", "is_green_pipe", "reopen_blocking",
]

#: The longest single ``os.read`` of `PipeIO.readall` (it starts small and doubles).
_MAX_READ_CHUNK = 1 << 20

#: fd -> the open `PipeIO` that made it non-blocking; see `is_green_pipe`.
_green_fds: weakref.WeakValueDictionary[int, PipeIO] = weakref.WeakValueDictionary()


def _restore_blocking(fd: int) -> None:
    try:
        os.set_blocking(fd, True)
    except OSError:
        pass  # the owner closed it already


def _notify_closed(fd: int) -> None:
    """Wake green threads of this OS thread parked on ``fd`` (about to be closed).

    Does not create a hub in an OS thread that never used greensched (one closing a
    pipe at exit, say): there, nothing can be parked on the fd.
    """
    hub = existing_hub()
    if hub is not None:
        hub.notify_fd_closed(fd)


class PipeIO(io.RawIOBase):
    """A raw, unbuffered file over a pipe (or FIFO) descriptor whose waits park.

    ``mode`` is ``"rb"`` (the read end) or ``"wb"`` (the write end). The descriptor
    is made non-blocking for as long as this object is open; it is closed with the
    object unless ``closefd=False``, in which case its blocking mode is put back.
    """

    # Class-level defaults, so that an object whose __init__ failed closes cleanly.
    _fd = -1
    _mode = "rb"
    _closefd = False
    _parked = 0
    _was_blocking = False

    def __init__(self, fd: int, mode: str = "rb", closefd: bool = True) -> None:
        super().__init__()
        if isinstance(fd, bool) or not isinstance(fd, int):
            raise TypeError(f"PipeIO needs a file descriptor (an int), not {type(fd).__name__}")
        if fd < 0:
            raise ValueError(f"negative file descriptor: {fd}")
        if mode not in ("rb", "wb", "r", "w"):
            raise ValueError(f"PipeIO mode must be 'rb' (read end) or 'wb' (write end), not {mode!r}")
        was_blocking = os.get_blocking(fd)  # also checks that the fd is open (EBADF)
        if was_blocking:
            os.set_blocking(fd, False)
        self._fd = fd
        self._mode = mode[0] + "b"
        self._closefd = closefd
        self._was_blocking = was_blocking
        _green_fds[fd] = self

    # -- what the file is ------------------------------------------------------------

    @property
    def name(self) -> int:
        """The descriptor, as `io.FileIO` names files opened from one."""
        return self._fd

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def closefd(self) -> bool:
        return self._closefd

    @property
    def parked(self) -> int:
        """How many green threads are parked waiting on this file right now (0 or 1)."""
        return self._parked

    def fileno(self) -> int:
        self._check_open()
        return self._fd

    def readable(self) -> bool:
        self._check_open()
        return self._mode == "rb"

    def writable(self) -> bool:
        self._check_open()
        return self._mode == "wb"

    def seekable(self) -> bool:
        self._check_open()
        return False

    def isatty(self) -> bool:
        self._check_open()
        return os.isatty(self._fd)

    # -- I/O ---------------------------------------------------------------------------

    def readinto(self, buffer: Any) -> int:
        """Read into ``buffer`` what the pipe has (parking until it has something); 0 at EOF."""
        self._check_readable()
        with memoryview(buffer) as view, view.cast("B") as target:
            while True:
                try:
                    return os.readv(self._fd, [target])
                except BlockingIOError:
                    pass  # park outside the handler: a wake-up error is not "during" this one
                self._park(readable=True)

    def readall(self) -> bytes:
        """Read until end of file (the writer closed its end), parking while the pipe is empty."""
        self._check_readable()
        chunks: list[bytes] = []
        size = io.DEFAULT_BUFFER_SIZE
        while True:
            try:
                data = os.read(self._fd, size)
            except BlockingIOError:
                data = None
            if data is None:
                self._park(readable=True)
                continue
            if not data:
                return b"".join(chunks)
            chunks.append(data)
            size = min(size * 2, _MAX_READ_CHUNK)

    def write(self, data: Any) -> int:
        """Write all of ``data``, parking whenever the pipe is full; return its length.

        `BrokenPipeError` when the reader has gone (bytes written before it are not
        counted anywhere, as with a blocking ``write(2)`` that fails midway).
        """
        self._check_writable()
        with memoryview(data) as view, view.cast("B") as source:
            total = source.nbytes
            done = 0
            while done < total:
                try:
                    done += os.write(self._fd, source[done:])
                    continue
                except BlockingIOError:
                    pass
                self._park(readable=False)
            return total

    def _park(self, readable: bool) -> None:
        """Wait on the netpoller; counted, so `close` knows a thread is inside."""
        hub = get_hub()
        self._parked += 1
        try:
            # An owner that closes the fd notifies the hub first (`_release`): the fd
            # then stays registered between waits.
            owner = self if self._closefd else None
            if readable:
                hub.wait_readable(self._fd, None, owner)
            else:
                hub.wait_writable(self._fd, None, owner)
        finally:
            self._parked -= 1

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file; a green thread parked on it gets `OSError` (EBADF) at once."""
        if self.closed:
            return
        fd = self._fd
        try:
            super().close()
        finally:
            if fd >= 0:
                self._release(fd)

    def _release(
        self, fd: int, _close: Any = os.close, _registry: Any = _green_fds,
        _notify: Any = _notify_closed, _unblock: Any = _restore_blocking,
    ) -> None:
        """Forget ``fd``; close it (waking its waiters) or give it back as it was.

        The helpers are bound at definition: the last files may be closed at
        interpreter exit, after the module's globals are gone.
        """
        self._fd = -1
        if _registry.get(fd) is self:
            del _registry[fd]
        if self._closefd:
            _notify(fd)
            _close(fd)
        elif self._was_blocking:
            _unblock(fd)

    def _dealloc_warn(self, source: object, _warn: Any = warnings.warn) -> None:
        """Called by the buffered layer when it is collected unclosed (as `io.FileIO` has).

        ``_warn`` is bound at definition: at interpreter exit the module's globals
        may already be gone when the last files are collected.
        """
        if self._fd >= 0 and self._closefd:
            _warn(f"unclosed file {source!r}", ResourceWarning, stacklevel=3, source=source)

    def __del__(self) -> None:
        if not self.closed:
            self._dealloc_warn(self)
        super().__del__()  # IOBase's finaliser: close()

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def __repr__(self) -> str:
        if self.closed:
            return f"<{type(self).__module__}.{type(self).__qualname__} [closed]>"
        return (f"<{type(self).__module__}.{type(self).__qualname__} fd={self._fd} "
                f"mode={self._mode!r} closefd={self._closefd}>")

    # -- checks, with the stdlib's messages ------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def _check_readable(self) -> None:
        self._check_open()
        if self._mode != "rb":
            raise io.UnsupportedOperation("File not open for reading")

    def _check_writable(self) -> None:
        self._check_open()
        if self._mode != "wb":
            raise io.UnsupportedOperation("File not open for writing")


class _ClosesWhileParked:
    """``close()`` for the layers above `PipeIO`: it also works while a thread is parked inside.

    Such a thread holds the layer's lock, which ``close()`` would take first (and
    CPython raises "reentrant call" for a second green thread of the same OS
    thread). So when a green thread is parked in the raw file below, close that
    instead: the thread wakes with EBADF, and the layers above report ``closed``
    (they ask the raw file). Only builtins are used: this may run at interpreter
    exit, after the module's globals are gone.
    """

    def close(self) -> None:
        raw: Any = self
        while raw is not None and not hasattr(raw, "parked"):
            raw = raw.buffer if hasattr(raw, "buffer") else getattr(raw, "raw", None)
        if raw is not None and raw.parked and not raw.closed:
            raw.close()
            return
        super().close()  # type: ignore[misc]  # a mixin: super() is the io class


class BufferedPipeReader(_ClosesWhileParked, io.BufferedReader):
    """`io.BufferedReader` over a `PipeIO`; ``close`` also works while a reader is parked."""


class BufferedPipeWriter(_ClosesWhileParked, io.BufferedWriter):
    """`io.BufferedWriter` over a `PipeIO`; ``close`` also works while a writer is parked."""


class TextPipeWrapper(_ClosesWhileParked, io.TextIOWrapper):
    """`io.TextIOWrapper` over a green pipe; ``close`` also works while a thread is parked in it."""


GreenPipeFile = PipeIO | BufferedPipeReader | BufferedPipeWriter | TextPipeWrapper


def open_pipe(
    fd: int,
    mode: str = "rb",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    *,
    line_buffering: bool = False,
    write_through: bool = False,
) -> GreenPipeFile:
    """``io.open(fd, ...)`` for a pipe end, with green reads and writes.

    ``mode`` is ``"rb"``/``"r"`` for the read end, ``"wb"``/``"w"`` for the write
    end. ``buffering`` is as for `open`: 0 gives the raw `PipeIO` (binary only), 1
    line buffering (text only), -1 a buffer of the pipe's block size. ``encoding``,
    ``errors``, ``newline`` (text only) as for `open`; ``line_buffering`` and
    ``write_through`` as for `io.TextIOWrapper`.
    """
    if mode not in ("rb", "wb", "r", "w"):
        raise ValueError(f"open_pipe mode must be 'r', 'w', 'rb' or 'wb', not {mode!r}")
    text = not mode.endswith("b")
    if not text and (encoding is not None or errors is not None or newline is not None):
        raise ValueError("binary mode doesn't take an encoding, errors or newline argument")
    if buffering == 1 and text:
        line_buffering, buffering = True, -1
    elif buffering == 1:
        warnings.warn("line buffering (buffering=1) isn't supported in binary mode, "
                      "the default buffer size will be used", RuntimeWarning, stacklevel=2)
        buffering = -1
    if buffering == 0 and text:
        raise ValueError("can't have unbuffered text I/O")
    raw = PipeIO(fd, mode[0] + "b", closefd)
    try:
        binary = wrap_buffered(raw, buffering)
        if not text:
            return binary
        return TextPipeWrapper(binary, encoding=encoding, errors=errors, newline=newline,
                               line_buffering=line_buffering, write_through=write_through)
    except BaseException:
        raw.close()
        raise


def wrap_buffered(raw: PipeIO, buffering: int = -1) -> PipeIO | BufferedPipeReader | BufferedPipeWriter:
    """``raw`` itself for ``buffering == 0``, else a buffered reader or writer over it.

    A negative ``buffering`` picks the size `open` would: the pipe's ``st_blksize``,
    or `io.DEFAULT_BUFFER_SIZE` when the system does not say.
    """
    if buffering == 0:
        return raw
    size = buffering if buffering > 1 else _default_buffer_size(raw.fileno())
    if raw.readable():
        return BufferedPipeReader(raw, size)
    return BufferedPipeWriter(raw, size)


def is_green_pipe(fd: int) -> bool:
    """Is ``fd`` a pipe that an open `PipeIO` made non-blocking?

    Children must not inherit such a description (see `reopen_blocking`). Checked
    against the descriptor itself, so a number closed behind the `PipeIO`'s back and
    reused by another file does not count.
    """
    if fd not in _green_fds:
        return False
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode) and not os.get_blocking(fd)
    except OSError:
        return False


def reopen_blocking(fd: int) -> int | None:
    """A new, blocking, open file description of the pipe ``fd`` is an end of, or None.

    Opening ``/proc/self/fd/N`` opens the pipe itself again (Linux), with flags of
    its own: a child given the new fd reads and writes in blocking mode, as programs
    expect, while ``fd`` stays non-blocking for its green file. Returns None where
    ``/proc`` is missing or the kernel refuses (a write end whose readers are all
    gone may give ENXIO). The new fd is non-inheritable; the caller closes it.
    """
    try:
        access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
        # O_NONBLOCK so that opening a read end with no writer left cannot hang.
        twin = os.open(f"/proc/self/fd/{fd}", access | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        os.set_blocking(twin, True)
    except OSError:
        os.close(twin)
        return None
    return twin


def _default_buffer_size(fd: int) -> int:
    """What `open` picks: ``st_blksize`` when it is larger than 1, else DEFAULT_BUFFER_SIZE."""
    try:
        size = os.fstat(fd).st_blksize
    except OSError:
        return io.DEFAULT_BUFFER_SIZE
    return size if size > 1 else io.DEFAULT_BUFFER_SIZE
