"""Re-tripping a signal at the interpreter's next check, from C (used by `_preempt`).

A Python signal handler cannot re-trip its own signal for "the next check": its
own bytecodes check for signals, so it would re-enter at once. A pending call
(``Py_AddPendingCall``) whose function is C runs at the next check *after* the
signal handlers of that check, and trips the signal for the check after it. No
Python code runs in the pending call, so CPython's one-pending-call-at-a-time guard
is never held across a greenlet switch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["make_pending_retrip"]


def make_pending_retrip() -> tuple[Callable[[Any, int], int] | None, Any]:
    """``(add, trip)`` so that ``add(trip, signum)`` re-trips ``signum`` at the next check.

    Uses two stable C-API functions through ctypes: ``Py_AddPendingCall`` and
    ``PyErr_SetInterruptEx`` (3.10+), whose ``int f(int)`` signature is called as the
    pending call's ``int f(void *)`` with the signal number as the pointer value (a
    register-passed integer on every ABI CPython supports). No Python code runs in
    the pending call, so CPython's "one pending call at a time" guard is never held
    across a switch. ``(None, None)`` where unavailable (another interpreter); the
    handler then re-arms the timer for a short retry instead.
    """
    try:
        import ctypes

        api = ctypes.pythonapi
        pending = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
        add = api.Py_AddPendingCall
        add.argtypes = [pending, ctypes.c_void_p]
        add.restype = ctypes.c_int
        # .value is None only for a NULL pointer; a function exported by libpython is never NULL.
        trip = pending(ctypes.cast(api.PyErr_SetInterruptEx, ctypes.c_void_p).value)  # type: ignore[arg-type]
    except (ImportError, AttributeError, ValueError):
        return None, None
    return add, trip
