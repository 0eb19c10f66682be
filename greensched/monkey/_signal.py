"""Green `signal`: an exception raised by a signal handler reaches the main thread.

CPython runs Python signal handlers in the main OS thread, between two bytecodes of
whatever that thread runs. With OS threads that is always the main thread, so a
handler that raises (``sys.exit()`` in a SIGTERM handler, the usual way to stop a
server; a custom exception on SIGUSR1) interrupts the main thread. With green
threads the main OS thread may be running any green thread when the signal lands,
and the exception would end *that* one instead (silently, for ``SystemExit``),
while the main thread never hears of it.

The green ``signal.signal`` therefore installs each Python handler inside a small
wrapper (`RoutedHandler`) that calls it as it is and, if it raises while a green
thread other than the main one runs, throws the exception into the main green
thread (where it waits, or where it will resume) and lets the interrupted thread go
on as if nothing happened: what threaded code sees. A handler that raises while the
main green thread or the hub runs raises there, as before (the hub hands it to the
main thread). Handlers installed before ``patch_all()`` are wrapped too.

``signal.getsignal`` and the return value of ``signal.signal`` give back the
handler the program installed, never the wrapper. greensched's own handlers
(preemption, the dump signal) are installed as they are: the preemption handler's
last act must be its tail call (see ``_core/_preempt.py``), which a wrapper frame
would break, and they never raise into user code.
"""

from __future__ import annotations

import signal as _stdlib_signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from .._core._hub import get_hub
from ._registry import patch_attr

__all__ = ["RoutedHandler", "signal", "getsignal", "patch"]

__implements__ = ["signal", "getsignal"]

_original_signal = _stdlib_signal.signal
_original_getsignal = _stdlib_signal.getsignal


class RoutedHandler:
    """Calls ``handler``; an exception it raises in a non-main green thread goes to main."""

    __slots__ = ("handler",)

    def __init__(self, handler: Callable[[int, FrameType | None], Any]) -> None:
        self.handler = handler

    def __call__(self, signum: int, frame: FrameType | None) -> Any:
        try:
            return self.handler(signum, frame)
        except BaseException as exc:
            hub = get_hub()
            current = hub.current
            if current is None or current is hub.main or not hub.throw(hub.main, exc):
                raise  # in main or the hub already (or main cannot take it): as CPython does
            return None  # main raises it where it waits; the interrupted thread goes on

    def __repr__(self) -> str:
        return f"<greensched routing {self.handler!r} to the main green thread>"


def _routed(handler: Any) -> Any:
    """``handler`` wrapped for routing, unless it needs none (SIG_DFL, ours, already routed)."""
    if not callable(handler) or isinstance(handler, RoutedHandler):
        return handler
    if (getattr(handler, "__module__", None) or "").startswith("greensched."):
        return handler  # greensched's own: see the module docstring
    return RoutedHandler(handler)


def _unwrap(handler: Any) -> Any:
    return handler.handler if isinstance(handler, RoutedHandler) else handler


def signal(signalnum: int, handler: Any) -> Any:  # keywords allowed, as the stdlib's
    """`signal.signal`, with the handler's exceptions raised in the main green thread."""
    return _unwrap(_original_signal(signalnum, _routed(handler)))


def getsignal(signalnum: int) -> Any:
    """`signal.getsignal`: the handler the program installed (never greensched's wrapper)."""
    return _unwrap(_original_getsignal(signalnum))


signal.__doc__ = (signal.__doc__ or "") + "\n\n" + (_original_signal.__doc__ or "")
getsignal.__doc__ = (getsignal.__doc__ or "") + "\n\n" + (_original_getsignal.__doc__ or "")


def patch() -> None:
    """Install the green `signal`/`getsignal`, and wrap the Python handlers already installed."""
    patch_attr(_stdlib_signal, "signal", signal)
    patch_attr(_stdlib_signal, "getsignal", getsignal)
    for signum in _stdlib_signal.valid_signals():
        try:
            current = _original_getsignal(signum)
            routed = _routed(current)
            if routed is not current:
                _original_signal(signum, routed)
        except (OSError, ValueError, RuntimeError):
            continue  # uncatchable (SIGKILL...), or patch_all() called outside the main thread
