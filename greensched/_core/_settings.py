"""The preemption settings and their limits: GREENSCHED_PREEMPT, GREENSCHED_SLICE_MS,
GREENSCHED_GRANULARITY_MS.

A value we cannot understand, or one that would hang the process, is a `ValueError`
that names the setting, says what it accepts and why; it is never silently ignored
or clamped. The environment is checked when greensched is imported (``_preempt``
calls `read_env_config` at its import) and read again when the main hub is created;
`set_preemption` and ``python -m greensched --slice`` check their argument at once.

The slice floor
---------------
Every tick costs a signal, a handler and often a switch. Measured on this 2-core
machine while four other engineers loaded it (CPython 3.11; docs/reliability.md has
the table and the command): two CPU-bound threads doing fixed work took 0.2 s at a
10 ms slice, 0.38 s at 0.1 ms, 0.81 s at 0.05 ms, 6.6 s at 0.02 ms and never
finished at 0.01 ms; a queue ping-pong beside a hog never finished at 0.02 ms;
``spawn(time.sleep, 0.2).join()`` never finished at 0.01 ms. Below about 0.05 ms
the handler's own work fills the slice and nothing else runs: live-lock. The floor,
`MIN_SLICE_MS` = 0.5 ms, is ten times above where it began and five times above
the point where work slowed down 2x; at 0.5 ms the same workloads ran as fast as at
10 ms, within the noise.

The granularity
---------------
The wake-up granularity is how long a thread runs before a sleeper that fell due
(or a socket that became ready) may preempt it: Linux CFS's
``sched_wakeup_granularity``, whose base value is also 1 ms. Each such preemption
costs what a tick and a switch cost, and comes at most once per granularity, so
the slice's floor is its floor too. A granularity above the slice means that
wake-ups wait for the slice to end: the slice bounds it (`Preemptor` uses the
smaller of the two).
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = [
    "DEFAULT_SLICE_MS", "MIN_SLICE_MS", "MAX_SLICE_MS", "DEFAULT_GRANULARITY_MS", "check_slice_ms",
    "check_granularity_ms", "read_env_config", "read_env_granularity", "check_env_at_import",
]

DEFAULT_SLICE_MS = 10.0
#: Below this a slice live-locks the process or nearly so (see the module docstring).
MIN_SLICE_MS = 0.5
#: An hour: above it, "preemption" means nothing; turn it off instead.
MAX_SLICE_MS = 3_600_000.0
#: How long a thread runs before a sleeper that fell due may preempt it (see above).
DEFAULT_GRANULARITY_MS = 1.0


def read_env_config(environ: dict[str, str] | None = None) -> tuple[bool, float]:
    """(enabled, slice in ms) from GREENSCHED_PREEMPT and GREENSCHED_SLICE_MS.

    A value we cannot understand is a `ValueError` that names the variable and
    says what it accepts; it is never silently ignored.
    """
    env = os.environ if environ is None else environ
    enabled = True
    raw = env.get("GREENSCHED_PREEMPT")
    if raw is not None and raw.strip() != "":
        flag = raw.strip().lower()
        if flag in ("0", "false", "no", "off"):
            enabled = False
        elif flag in ("1", "true", "yes", "on"):
            enabled = True
        else:
            raise ValueError(
                f"GREENSCHED_PREEMPT={raw!r} is not understood: use GREENSCHED_PREEMPT=0 to turn "
                f"preemption off or GREENSCHED_PREEMPT=1 (the default) to keep it on"
            )
    slice_ms = DEFAULT_SLICE_MS
    raw = env.get("GREENSCHED_SLICE_MS")
    if raw is not None and raw.strip() != "":
        slice_ms = check_slice_ms(raw, "GREENSCHED_SLICE_MS")
    return enabled, slice_ms


def read_env_granularity(environ: dict[str, str] | None = None) -> float:
    """The wake-up granularity in ms from GREENSCHED_GRANULARITY_MS (default 1)."""
    env = os.environ if environ is None else environ
    raw = env.get("GREENSCHED_GRANULARITY_MS")
    if raw is None or raw.strip() == "":
        return DEFAULT_GRANULARITY_MS
    return check_granularity_ms(raw, "GREENSCHED_GRANULARITY_MS")


def check_granularity_ms(value: Any, what: str = "granularity_ms") -> float:
    """A number of milliseconds from the slice's floor up to an hour, or a clear `ValueError`."""
    return _check_ms(
        value, what,
        example=f"{what}=1 (the default: a sleeper that falls due preempts a thread that has run 1 ms)",
        too_long="a granularity as long as the slice makes wake-ups wait for the slice to end",
        floor_why="every wake-up preemption costs a signal and a switch, and below the floor they "
                  "leave no time for the threads",
        below_floor=f"use {what}={MIN_SLICE_MS:g} or more",
    )


def check_slice_ms(value: Any, what: str = "slice_ms") -> float:
    """A number of milliseconds from the floor up to an hour, or a clear `ValueError`."""
    return _check_ms(
        value, what,
        example=f"{what}=10 (the default) or {what}=1 for a 1 ms slice",
        too_long="to turn preemption off use GREENSCHED_PREEMPT=0 or set_preemption(False)",
        floor_why="with slices that short the timer's own ticks leave no time for the threads "
                  "(measured: the process live-locks near 0.02 ms)",
        below_floor=f"use {what}={MIN_SLICE_MS:g} or more (1 ms switches threads 10 times as often "
                    f"as the default 10 ms)",
    )


def _check_ms(value: Any, what: str, example: str, too_long: str, floor_why: str, below_floor: str) -> float:
    """The checks both settings share, each error worded for the setting."""
    try:
        ms = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}={value!r} is not a number of milliseconds; use e.g. {example}") from None
    if not (ms > 0.0 and ms < MAX_SLICE_MS):
        raise ValueError(
            f"{what}={value!r} must be a positive number of milliseconds below one hour; {too_long}")
    if ms < MIN_SLICE_MS:
        raise ValueError(
            f"{what}={value!r} is below the {MIN_SLICE_MS:g} ms floor: {floor_why}; {below_floor}")
    return ms


def check_env_at_import() -> None:
    """Check the environment's settings now (at ``import greensched``), unless the launcher will.

    Under ``python -m greensched``, CPython imports the package before it runs the
    launcher module, and keeps ``sys.argv[0] == "-m"`` meanwhile (``sys.orig_argv``,
    3.10+, has the real command line). The launcher reads the settings itself, first
    thing, and reports a bad one as a one-line usage error (exit 2) where this import
    would print a traceback.
    """
    argv = getattr(sys, "orig_argv", [])
    launcher = sys.argv[:1] == ["-m"] and any(
        flag == "-m" and name in ("greensched", "greensched.__main__")
        for flag, name in zip(argv, argv[1:], strict=False)
    )
    if not launcher:
        read_env_config()
        read_env_granularity()
