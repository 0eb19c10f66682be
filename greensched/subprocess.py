"""Green child processes: `os.waitpid` that parks, and a `Popen` whose pipes park.

``waitpid(pid, options)`` has the signature, results and errors of `os.waitpid`.
With ``WNOHANG`` it is the original call. Without it, it polls the child with
``WNOHANG`` and, while the child runs, parks the green thread: on a pidfd
(``os.pidfd_open``, Linux 5.3+), which becomes readable when the child exits; for
``pid <= 0`` (any child, a process group) or where pidfds are missing, on a short
sleep that grows from 1 ms to 50 ms. `subprocess` waits through ``os.waitpid``,
so with it patched ``Popen.wait()``, ``run()`` and ``call()`` park too.

`Popen` is the stdlib's class with green pipes. Its ``stdin``/``stdout``/``stderr``
are read and written directly (``proc.stdout.readline()``, ``for line in
proc.stdout``, ``proc.stdin.write(data)``), which with the stdlib's files blocks the
OS thread inside C code that cannot even be preempted. How it is done:

* The stdlib's ``__init__`` runs unchanged: argument checks, warnings, pipe
  creation, the fork. Every file it opened on a pipe's parent end is then replaced
  by a `greensched.fileobject` twin of the same shape over the same pipe: raw for
  ``bufsize=0``, buffered (with the size `open` would pick, or ``bufsize``) and text
  with the same encoding, errors, line buffering and ``write_through``. The twin
  owns a duplicate of the descriptor (``os.dup``, non-inheritable) and the stdlib's
  file is closed: a file object cannot hand its descriptor over, and the child
  already has its own end. Only that duplicate is made non-blocking.
* ``communicate()`` is the stdlib's. It writes and reads the raw descriptors with
  ``os.write``/``os.read`` only after its selector (``subprocess._PopenSelector``,
  green once patched) said they were ready, so they never meet `BlockingIOError`:
  a pipe reported writable has room for the ``PIPE_BUF`` bytes it writes at a time,
  which POSIX guarantees are written whole. Its fast path with a single pipe uses
  the file objects (``stdin.write(input)``, ``stdout.read()``), which are green.
* A green pipe given to another child (``Popen(cmd2, stdin=p1.stdout)``, the shell
  pipeline of the subprocess docs) must not reach it non-blocking: O_NONBLOCK
  belongs to the open file description, which the child would share, and programs
  fail on EAGAIN. `Popen` hands the child a blocking twin description of the same
  pipe instead (`greensched.fileobject.reopen_blocking`); where that is impossible
  it makes the shared description blocking again, and the parent's green file then
  blocks like the stdlib's.

Known differences, all of the parent's pipe files:

* they are `greensched.fileobject` subclasses of the `io` classes (``isinstance``
  checks hold; a raw pipe is a `PipeIO`, not an `io.FileIO`), and their descriptor
  numbers are not the ones the pipes were created with;
* their descriptors are non-blocking: ``os.read(proc.stdout.fileno(), n)`` with
  nothing to read raises `BlockingIOError` instead of waiting (read the file, or
  wait with ``select``/``selectors`` first, as ``communicate()`` does);
* one green thread at a time may use each of them, ``close()`` excepted (see
  `greensched.fileobject`);
* descriptors passed with ``pass_fds`` reach the child as they are (non-blocking
  if green): only ``stdin``, ``stdout`` and ``stderr`` get a blocking twin.
"""

from __future__ import annotations

import io
import os
import subprocess as _stdlib_subprocess
import warnings
from typing import Any

from . import fileobject
from ._core._hub import get_hub

__all__ = ["waitpid", "Popen"]

_original_waitpid = os.waitpid
_pidfd_open = getattr(os, "pidfd_open", None)
_StdlibPopen = _stdlib_subprocess.Popen

__implements_os__ = ["waitpid"]
__implements_subprocess__ = ["Popen"]

#: Where the child's ends of the pipes sit in the tuple `Popen._get_handles` returns:
#: (p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite).
_CHILD_ENDS = (0, 3, 5)


def waitpid(pid: int, options: int, /) -> tuple[int, int]:
    """`os.waitpid`, parking the green thread (not the OS thread) until the child changes."""
    if options & os.WNOHANG:
        return _original_waitpid(pid, options)
    delay = 0.001
    while True:
        result = _original_waitpid(pid, options | os.WNOHANG)
        if result[0] != 0:
            return result
        pidfd = _open_pidfd(pid)
        if pidfd is not None:
            try:
                get_hub().wait_readable(pidfd)
            finally:
                get_hub().notify_fd_closed(pidfd)
                os.close(pidfd)
        else:
            get_hub().sleep(delay)
            delay = min(delay * 2, 0.05)


def _open_pidfd(pid: int) -> int | None:
    if pid <= 0 or _pidfd_open is None:
        return None
    try:
        return int(_pidfd_open(pid))
    except OSError:
        return None  # too old a kernel, or no permission: poll instead


class Popen(_StdlibPopen[Any]):
    """`subprocess.Popen` whose ``stdin``, ``stdout`` and ``stderr`` pipes park green threads.

    Same constructor, attributes, methods and errors as the stdlib's; see the module
    docstring for what differs underneath.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Blocking twins of green pipes handed to this child (see _get_handles):
        # the child has its copies once the stdlib's __init__ is done, success or not.
        self._green_child_ends: dict[int, int] = {}
        try:
            super().__init__(*args, **kwargs)
        finally:
            _close_quietly(self._green_child_ends.values())
            self._green_child_ends.clear()
        bufsize = kwargs.get("bufsize", args[1] if len(args) > 1 else -1)
        self._make_pipes_green(-1 if bufsize is None else bufsize)

    # inspect.signature(Popen) shows the stdlib's parameters, not (*args, **kwargs).
    __init__.__wrapped__ = _StdlibPopen.__init__  # type: ignore[attr-defined]

    def _get_handles(self, stdin: Any, stdout: Any, stderr: Any) -> tuple[Any, ...]:
        """The stdlib's handles, with green (non-blocking) pipes swapped for blocking twins."""
        # Popen._get_handles is private: typeshed does not declare it.
        handles = list(super()._get_handles(stdin, stdout, stderr))  # type: ignore[misc]
        for index in _CHILD_ENDS:
            handles[index] = self._blocking_end(handles[index])
        return tuple(handles)

    def _blocking_end(self, fd: int) -> int:
        """``fd`` itself, or, for a green pipe, a blocking twin the child may inherit."""
        if not isinstance(fd, int) or fd < 0 or not fileobject.is_green_pipe(fd):
            return fd
        twins: dict[int, int] = self.__dict__.setdefault("_green_child_ends", {})
        twin = twins.get(fd)
        if twin is None:
            twin = fileobject.reopen_blocking(fd)
            if twin is None:
                os.set_blocking(fd, True)  # the child must not see EAGAIN; we block instead
                return fd
            twins[fd] = twin
        return twin

    def _make_pipes_green(self, bufsize: int) -> None:
        """Replace each pipe file the stdlib's ``__init__`` opened by its green twin."""
        for name in ("stdin", "stdout", "stderr"):
            stream = getattr(self, name)
            if stream is not None:
                setattr(self, name, _green_twin(stream, bufsize, name))


def _green_twin(stream: Any, bufsize: int, name: str) -> Any:
    """A green file of ``stream``'s shape over a duplicate of its fd; ``stream`` is closed.

    ``stream`` is what the stdlib's ``Popen.__init__`` made: ``io.open(fd, "rb" or
    "wb", bufsize)``, maybe inside a `io.TextIOWrapper`. If the fd cannot be
    duplicated (no descriptor left), ``stream`` itself is returned, with a warning.
    """
    text = stream if isinstance(stream, io.TextIOWrapper) else None
    binary = text.buffer if text is not None else stream
    mode = "wb" if binary.writable() else "rb"
    buffering = 0 if isinstance(binary, io.FileIO) else bufsize
    try:
        fd = os.dup(binary.fileno())
    except OSError as exc:
        warnings.warn(
            f"Popen.{name} stays an ordinary blocking file ({exc}): reading or writing it "
            f"blocks every green thread. Raise the open-file limit (ulimit -n), or use "
            f"communicate().",
            RuntimeWarning,
            stacklevel=4,
        )
        return stream
    try:
        stream.close()
        raw = fileobject.PipeIO(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    try:
        green = fileobject.wrap_buffered(raw, buffering)
    except BaseException:
        raw.close()
        raise
    if text is None:
        return green
    return fileobject.TextPipeWrapper(
        green, encoding=text.encoding, errors=text.errors,
        line_buffering=text.line_buffering, write_through=text.write_through,
    )


def _close_quietly(fds: Any) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
