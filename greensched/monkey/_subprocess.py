"""Green `os.waitpid` and `subprocess`: child processes and their pipes park green threads.

``subprocess.Popen.wait()`` (and so ``run``/``call``) waits through
``os.waitpid``; ``communicate()`` through a selector that `subprocess` chose at
import (``_PopenSelector``), replaced here by greensched's. ``subprocess.Popen``
itself becomes `greensched.subprocess.Popen`, the stdlib class with green pipe
files, so ``proc.stdout.readline()`` and ``proc.stdin.write()`` park too.
``run``, ``call``, ``check_output`` and the rest look ``Popen`` up in their
module when called, so they use the green one.
"""

from __future__ import annotations

import os as _stdlib_os
import subprocess as _stdlib_subprocess

from .. import subprocess as _green_subprocess
from ._registry import patch_attr

__implements__ = list(_green_subprocess.__implements_os__)
__implements_subprocess__ = list(_green_subprocess.__implements_subprocess__)


def patch(selectors: bool = True) -> None:
    """Install the green `os.waitpid` and `Popen` (and the green selector for `communicate`)."""
    for name in __implements__:
        patch_attr(_stdlib_os, name, getattr(_green_subprocess, name))
    for name in __implements_subprocess__:
        patch_attr(_stdlib_subprocess, name, getattr(_green_subprocess, name))
    if selectors:
        from ..net import select as _green_select

        patch_attr(_stdlib_subprocess, "_PopenSelector", _green_select.DefaultSelector)
