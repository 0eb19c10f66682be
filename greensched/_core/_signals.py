"""The signals greensched owns, and the one it lends: which signal does what.

Preemption uses two signals and the program may ask for a third:

* **SIGALRM**, the slice timer's tick (``setitimer(ITIMER_REAL)``): `_preempt`'s
  ``_on_tick`` decides whether the running thread should yield.
* **SIGRTMAX**, the highest-numbered signal, `SWITCH_SIGNAL`: the switch itself runs
  from its handler, so that every other pending handler runs before it (see
  `_preempt`, "Things that don't work").
* **The dump signal** (``GREENSCHED_DUMP_SIGNAL``, ``python -m greensched --dump-signal``,
  `greensched.monitor`): prints every green thread's stack, and never switches.

SIGINT is shared: while its handler is Python's default one, preemption installs
its own so that Ctrl-C reaches the main green thread wherever it is parked.

Under ``patch_all()`` the program's own ``signal.alarm``, ``setitimer`` and SIGALRM
handler are virtual (monkey/_signal.py): they run on a hub timer, beside the tick.
So the real functions are bound here, at import, before any patch: `setitimer`
and `signal_signal` are the kernel's timer and handler table, whatever the
``signal`` module's names later say.

This module and `_preempt` are the only ones in greensched/_core that touch ``signal``.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = [
    "SWITCH_SIGNAL", "RESERVED", "setitimer", "signal_signal", "OUR_HANDLER_OWNERS",
    "user_signal_handlers", "parse_signal", "set_dump_signal", "DumpHandler",
]

#: The signal preemption switches threads from (None where there are no real-time signals).
SWITCH_SIGNAL: int | None = getattr(signal, "SIGRTMAX", None)

# The real ones, bound at import (see the module docstring).
setitimer = signal.setitimer
signal_signal = signal.signal

#: Classes whose bound methods are greensched's own handlers (`_preempt` adds the
#: preemptor's): a handler of theirs wakes no parked thread.
OUR_HANDLER_OWNERS: set[type] = set()


def user_signal_handlers() -> bool:
    """True if someone installed a Python signal handler that could wake a parked thread.

    The hub asks before it calls a program deadlocked: a handler of the program's
    might still set the event everyone waits for.
    """
    ours = (signal.default_int_handler, signal.SIG_DFL, signal.SIG_IGN, None)
    for signum in signal.valid_signals():
        try:
            handler = signal.getsignal(signum)
        except (ValueError, OSError):
            continue
        if handler in ours or type(getattr(handler, "__self__", None)) in OUR_HANDLER_OWNERS:
            continue  # ours: a dump on request wakes nobody, so it does not hide a deadlock
        return True
    return False


# -- the dump signal ---------------------------------------------------------------------------

#: Not usable as the dump signal: preemption's own, Ctrl-C's, and the uncatchable.
RESERVED: dict[int, str] = {
    signal.SIGALRM: "is the preemption timer's signal",
    signal.SIGINT: "is Ctrl-C (KeyboardInterrupt)",
    signal.SIGKILL: "cannot be caught",
    signal.SIGSTOP: "cannot be caught",
}
if SWITCH_SIGNAL is not None:
    RESERVED[SWITCH_SIGNAL] = "is the signal preemption switches threads from"


def parse_signal(value: Any, what: str = "signal") -> int:
    """A signal number from a name (``SIGUSR1``, ``usr1``) or a number, or a clear `ValueError`.

    ``what`` names the setting in the message (``GREENSCHED_DUMP_SIGNAL``, a flag...).
    """
    hint = "use a signal name or number such as SIGUSR1, SIGUSR2 or SIGQUIT"
    if isinstance(value, signal.Signals):
        signum = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        signum = value
    elif isinstance(value, str) and value.strip().isdigit():
        signum = int(value.strip())
    elif isinstance(value, str) and value.strip():
        name = value.strip().upper()
        name = name if name.startswith("SIG") else "SIG" + name
        member = getattr(signal.Signals, name, None) if name.isidentifier() else None
        if member is None:
            raise ValueError(f"{what}: {value!r} is not a signal on this system; {hint}")
        signum = int(member)
    else:
        raise ValueError(f"{what}: {value!r} is not a signal; {hint}")
    if signum not in signal.valid_signals():
        raise ValueError(f"{what}: {value!r} is not a valid signal number here; {hint}")
    if signum in RESERVED:
        raise ValueError(f"{what}: {value!r} cannot be used: {signal.Signals(signum).name} "
                         f"{RESERVED[signum]}; {hint}")
    return signum


class DumpHandler:
    """The Python-level handler of the dump signal: calls ``dump()``, never switches.

    It runs wherever the main OS thread checks for signals: in a green thread or in
    the hub while it polls. Preemption never switches while greensched's frames are
    on the stack, so the dump is not interleaved with other threads either.
    """

    __slots__ = ("dump", "previous")

    def __init__(self, dump: Callable[[], None], previous: Any) -> None:
        self.dump = dump
        self.previous = previous

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.dump()


OUR_HANDLER_OWNERS.add(DumpHandler)

_dump_handlers: dict[int, DumpHandler] = {}


def set_dump_signal(signum: int | None, dump: Callable[[], None] | None = None) -> None:
    """Make ``signum`` call ``dump()``; None removes ours and restores what was there.

    Only one dump signal at a time: setting another first restores the previous
    one's handler. Must run in the main OS thread (`ValueError` otherwise, as
    `signal.signal` says).
    """
    for old, handler in list(_dump_handlers.items()):
        if old != signum or dump is None:
            signal_signal(old, handler.previous)
            del _dump_handlers[old]
    if signum is None or dump is None:
        return
    current = _dump_handlers.get(signum)
    if current is not None:
        current.dump = dump
        return
    previous = signal.getsignal(signum)
    handler = DumpHandler(dump, signal.SIG_DFL if previous is None else previous)
    signal_signal(signum, handler.handle)
    _dump_handlers[signum] = handler
