"""Green `os.waitpid` and `subprocess`: waiting for a child parks the green thread.

``subprocess.Popen.wait()`` (and so ``run``/``call``) waits through
``os.waitpid``; ``communicate()`` through a selector that `subprocess` chose at
import (``_PopenSelector``), replaced here by greensched's. Pipes read directly
(``proc.stdout.read()``) are ordinary files and still block: use
``communicate()`` or ``run(capture_output=True)``.
"""

from __future__ import annotations

import os as _stdlib_os
import subprocess as _stdlib_subprocess

from .. import subprocess as _green_subprocess
from ._registry import patch_attr

__implements__ = list(_green_subprocess.__implements_os__)


def patch(selectors: bool = True) -> None:
    """Install the green `os.waitpid` (and the green selector for `communicate`)."""
    for name in __implements__:
        patch_attr(_stdlib_os, name, getattr(_green_subprocess, name))
    if selectors:
        from ..net import select as _green_select

        patch_attr(_stdlib_subprocess, "_PopenSelector", _green_select.DefaultSelector)
