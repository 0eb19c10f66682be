"""Green `signal.set_wakeup_fd`: the program's wake-up fd hears its own signals only.

``signal.set_wakeup_fd(fd)`` makes CPython's C-level handler write each caught
signal's number, as one byte, to ``fd``; an event loop (asyncio's, gunicorn's
arbiter and workers) sleeps in ``select`` on the other end and reads the bytes to
learn which handlers to run. Two things break that once greensched runs:

* **The preemption tick is a signal with a Python handler.** Every tick (SIGALRM,
  every few milliseconds while another thread is ready) writes a SIGALRM byte, so
  the loop wakes for nothing hundreds of times a second, and, worse, believes the
  *program's* SIGALRM arrived: asyncio's ``add_signal_handler(SIGALRM, cb)`` calls
  ``cb`` on the first tick, long before the program's ``setitimer`` falls due, and
  the program's real alarm then finds the handler gone (CPython's
  test_asyncio.test_events died of SIGALRM on it).
* **The program's SIGALRM is virtual** (see ``_signal.py``): no C handler runs for
  it, so no byte is written, and a loop waiting for its byte never wakes.

So under the patch the C-level wake-up fd is a pipe of ours (the *relay*), and a
daemon green thread in the main OS thread copies each byte from it to the program's
fd, except the bytes of signals whose handler is greensched's own (the preemption
tick, the dump signal). The virtual SIGALRM writes its byte to the program's fd
itself, just before it calls the handler, as the C handler would. The program's fd
is checked as the real call checks it (an open fd, in non-blocking mode), the
previous program fd is returned, and ``set_wakeup_fd(-1)`` turns it all off.

What differs: a byte reaches the program's fd when the hub next runs the relay,
within a preemption tick even while another thread computes, rather than at once;
and a forked child gets the program's fd back as the real wake-up fd (no relay runs
there, so preemption bytes reach it, as before the patch).
"""

from __future__ import annotations

import operator
import os
import signal as _stdlib_signal
import sys
import traceback
import types
from typing import Any

from .._core._greenthread import GreenThread
from ..scheduler import wait_readable
from ._registry import patch_attr

__all__ = ["set_wakeup_fd", "write_wakeup_byte", "is_greensched_handler", "patch"]

__implements__ = ["set_wakeup_fd"]

_original_set_wakeup_fd = _stdlib_signal.set_wakeup_fd
_original_getsignal = _stdlib_signal.getsignal
_SIGINT = _stdlib_signal.SIGINT


def is_greensched_handler(handler: Any) -> bool:
    """One of greensched's own handlers (preemption, the dump signal), by its module.

    They are all functions or bound methods; a callable object of ours that holds the
    program's handler (``_signal.RoutedHandler``) is the program's.
    """
    if not isinstance(handler, (types.FunctionType, types.MethodType)):
        return False
    return (getattr(handler, "__module__", None) or "").startswith("greensched.")


def _is_programs(signum: int) -> bool:
    """Does a C-level byte for ``signum`` belong on the program's wake-up fd?

    Not when greensched's own handler caught it (the preemption tick, the switch
    request, the dump signal), except SIGINT's: greensched's SIGINT handler stands in
    for Python's default one, whose byte a loop expects.
    """
    try:
        handler = _original_getsignal(signum)
    except ValueError:
        return True
    return signum == _SIGINT or not is_greensched_handler(handler)


class _Relay:
    """The pipe the C handler writes to, and the green thread that forwards from it."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        #: The program's fd (-1: none) and whether a full one is reported, as the real call.
        self.target = -1
        self.warn_on_full_buffer = True
        self._thread: GreenThread | None = None

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = GreenThread(self._forward, name="greensched-signal-wakeup", daemon=True)
            self._thread.start()

    def _forward(self) -> None:
        while True:
            wait_readable(self.read_fd)
            try:
                data = os.read(self.read_fd, 512)
            except BlockingIOError:
                continue
            kept = bytes(b for b in data if _is_programs(b))
            if kept:
                write_wakeup_byte(kept)


#: The relay, made by the first `set_wakeup_fd` under the patch (main OS thread only).
_relay: _Relay | None = None


def set_wakeup_fd(fd: int, /, *, warn_on_full_buffer: bool = True) -> int:
    """`signal.set_wakeup_fd`: the program's fd gets its signals' bytes, not greensched's."""
    global _relay
    fd = operator.index(fd)  # TypeError, with the real call's message, for a non-integer
    if fd != -1:
        os.fstat(fd)  # OSError (EBADF) for a closed fd, as the real call raises
        if os.get_blocking(fd):
            raise ValueError(f"the fd {fd} must be in non-blocking mode")
    if _relay is None:
        if fd == -1:
            return _original_set_wakeup_fd(-1, warn_on_full_buffer=warn_on_full_buffer)
        _relay = _Relay()
    relay = _relay
    # The real call refuses outside the main OS thread (ValueError): let it, before any change.
    _original_set_wakeup_fd(relay.write_fd if fd != -1 else -1)
    old, relay.target, relay.warn_on_full_buffer = relay.target, fd, warn_on_full_buffer
    if fd != -1:
        relay.start()
    return old


def write_wakeup_byte(data: bytes) -> None:
    """Write ``data`` (signal numbers) to the program's wake-up fd, if it set one.

    As CPython's C handler does: a full fd is reported only with ``warn_on_full_buffer``,
    any other error always, as "Exception ignored when trying to write to the signal
    wakeup fd", and the signal is never lost for it (its handler still runs).
    """
    relay = _relay
    if relay is None or relay.target == -1:
        return
    try:
        os.write(relay.target, data)
    except BlockingIOError as exc:
        if relay.warn_on_full_buffer:
            _report(exc)
    except OSError as exc:
        _report(exc)


def _report(exc: BaseException) -> None:
    print("Exception ignored when trying to write to the signal wakeup fd:", file=sys.stderr)
    traceback.print_exception(exc, file=sys.stderr)


def _after_fork_in_child() -> None:
    """No relay thread runs in a child: its real wake-up fd is the program's own again."""
    global _relay
    relay, _relay = _relay, None
    if relay is None:
        return
    try:
        _original_set_wakeup_fd(relay.target, warn_on_full_buffer=relay.warn_on_full_buffer)
    except (OSError, ValueError):
        _original_set_wakeup_fd(-1)
    for fd in (relay.read_fd, relay.write_fd):
        os.close(fd)


os.register_at_fork(after_in_child=_after_fork_in_child)


def patch() -> None:
    """Install the green `set_wakeup_fd`; in the main OS thread, a wake-up fd set before
    the patch moves behind the relay."""
    patch_attr(_stdlib_signal, "set_wakeup_fd", set_wakeup_fd)
    if _relay is not None:
        return
    try:
        earlier = _original_set_wakeup_fd(-1)
    except ValueError:
        return  # not the main OS thread: there is no wake-up fd to move
    if earlier != -1:
        set_wakeup_fd(earlier)
