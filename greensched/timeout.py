"""Timeout: bound how long a block of code may take, wherever it waits.

``with Timeout(2.5): ...`` raises `TimeoutExpired` (a `TimeoutError`) in the
current green thread if the block has not finished 2.5 s after it began. The
exception is raised where the thread is: in whatever it is parked on (a lock, a
queue, a sleep, a socket), or, if it was preempted while computing, at the point it
was preempted: a pending timeout keeps the preemption timer running, so even a
thread that computes alone is interrupted once the time is up. With preemption
off, code that never parks sees the timeout at its next park.

Timeouts nest: each raises its own exception instance, which carries the
`Timeout` that fired, so an outer timeout passes through an inner ``with`` block
untouched. ``Timeout(None)`` never fires, which lets callers pass an optional limit.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from ._core._greenthread import GreenThread
from ._core._hub import get_hub
from ._core._timers import TimerHandle

__all__ = ["Timeout", "TimeoutExpired"]


class TimeoutExpired(TimeoutError):
    """Raised by a `Timeout` that fired; ``.timeout`` is that `Timeout`."""

    def __init__(self, timeout: Timeout) -> None:
        super().__init__(f"timed out after {timeout.seconds} s")
        #: The `Timeout` that fired; None in a copy unpickled elsewhere (a Timeout
        #: belongs to its hub, and does not travel).
        self.timeout: Timeout | None = timeout

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_unpickle_expired, (self.args,))


def _unpickle_expired(args: tuple[Any, ...]) -> TimeoutExpired:
    """A `TimeoutExpired` from its pickle: the message kept, its `Timeout` gone."""
    exc = TimeoutExpired.__new__(TimeoutExpired)
    exc.args = args
    exc.timeout = None
    return exc


class Timeout:
    """Context manager that raises `TimeoutExpired` once ``seconds`` have passed."""

    def __init__(self, seconds: float | None) -> None:
        if seconds is not None:
            try:
                seconds = float(seconds)
            except (TypeError, ValueError):
                raise TypeError(f"Timeout seconds must be a number or None, not {seconds!r}") from None
            if not seconds >= 0:
                raise ValueError(f"Timeout seconds must be non-negative or None, not {seconds!r}")
        self.seconds = seconds
        #: True once the timeout has fired.
        self.expired = False
        self._thread: GreenThread | None = None
        self._handle: TimerHandle | None = None
        self._exc: TimeoutExpired | None = None

    def __enter__(self) -> Timeout:
        if self._thread is not None:
            raise RuntimeError("a Timeout cannot be entered twice; create a new one")
        hub = get_hub()
        self._thread = hub.current_thread_for_park()
        if self.seconds is not None:
            self._handle = hub.call_later(self.seconds, self._fire)
        return self

    def _fire(self, _arg: Any) -> None:
        """Runs in the hub when the time is up."""
        self._handle = None
        thread = self._thread
        exc = TimeoutExpired(self)
        if thread is not None and get_hub().throw(thread, exc):
            self.expired = True
            self._exc = exc

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            get_hub().cancel_timer(self._handle)
            self._handle = None
        if self._exc is not None and self._thread is not None and exc is not self._exc:
            # It fired but the block ended before the exception could be raised in it
            # (it was held back, see _preempt): it must not surface after the block.
            get_hub().withdraw(self._thread, self._exc)
        self._thread = None

    def __repr__(self) -> str:
        state = "expired" if self.expired else "pending"
        return f"<greensched.Timeout {self.seconds} s {state}>"
