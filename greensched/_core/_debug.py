"""Debug mode: the core checks its own invariants, at a cost, and fails at the first slip.

On when ``GREENSCHED_DEBUG=1`` is in the environment or Python runs in development
mode (``python -X dev``, ``PYTHONDEVMODE=1``); ``GREENSCHED_DEBUG=0`` turns it off even
then. Read once, at import: the checks are installed or not, so that off costs nothing
on the hot paths (see `_greenthread`, "the one state transition"). The test suite runs
with it on (tests/conftest.py).

What it checks:

* every change of a green thread's state is a legal edge of the state graph
  (`_greenthread.LEGAL_TRANSITIONS`), else `StateTransitionError` at the change;
* a park token is used for the park it was made for, by the thread it names, else
  `HubError` (`_hub.Hub.park`).
"""

from __future__ import annotations

import os
import sys

__all__ = ["DEBUG", "ENV_VAR"]

ENV_VAR = "GREENSCHED_DEBUG"


def _read() -> bool:
    value = os.environ.get(ENV_VAR, "").strip()
    if value in ("", "0", "1"):
        return value == "1" or (value == "" and bool(sys.flags.dev_mode))
    raise ValueError(
        f"{ENV_VAR}={value!r} is not understood: set it to 1 to check the scheduler's "
        f"invariants (slower), to 0 to turn the checks off even under python -X dev, "
        f"or leave it unset"
    )


#: Whether the core checks its invariants in this process.
DEBUG: bool = _read()
