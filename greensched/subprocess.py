"""Green waits for child processes: `os.waitpid` that parks instead of blocking.

``waitpid(pid, options)`` has the signature, results and errors of `os.waitpid`.
With ``WNOHANG`` it is the original call. Without it, it polls the child with
``WNOHANG`` and, while the child runs, parks the green thread: on a pidfd
(``os.pidfd_open``, Linux 5.3+), which becomes readable when the child exits; for
``pid <= 0`` (any child, a process group) or where pidfds are missing, on a short
sleep that grows from 1 ms to 50 ms. `subprocess` waits through ``os.waitpid``,
so with it patched ``Popen.wait()``, ``run()`` and ``call()`` park too.
"""

from __future__ import annotations

import os
from typing import Optional

from ._core._hub import get_hub

__all__ = ["waitpid"]

_original_waitpid = os.waitpid
_pidfd_open = getattr(os, "pidfd_open", None)

__implements_os__ = ["waitpid"]


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


def _open_pidfd(pid: int) -> Optional[int]:
    if pid <= 0 or _pidfd_open is None:
        return None
    try:
        return int(_pidfd_open(pid))
    except OSError:
        return None  # too old a kernel, or no permission: poll instead
