"""Green `time`: ``time.sleep`` parks the green thread instead of the OS thread."""

from __future__ import annotations

import math
import operator
import time as _stdlib_time
from typing import Any

from ..scheduler import sleep as _green_sleep
from ._registry import patch_attr

__implements__ = ["sleep"]


def sleep(secs: Any, /) -> None:
    """Suspend the calling green thread for ``secs`` seconds (the others run).

    Same argument rules and errors as `time.sleep`: an int or float, not negative,
    not NaN. ``sleep(0)`` lets the other ready green threads run once.
    """
    if type(secs) is not int:  # an int needs no check, and sleep(0) is hot: no call for it
        if not isinstance(secs, float):
            secs = operator.index(secs)  # the stdlib's TypeError for str, None...
        elif math.isnan(secs):
            raise ValueError("Invalid value NaN (not a number)")
    _green_sleep(secs)


def patch() -> None:
    """Install the green `sleep` into the `time` module."""
    patch_attr(_stdlib_time, "sleep", sleep)
