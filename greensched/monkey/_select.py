"""Green `select` and `selectors`: waiting on many fds parks instead of blocking.

``select.epoll``, ``select.kqueue`` and ``select.devpoll`` are left alone: code
that uses them directly still blocks its OS thread.
"""

from __future__ import annotations

import select as _stdlib_select
import selectors as _stdlib_selectors

from ..net import select as _green_select
from ._registry import patch_attr

__implements__ = list(_green_select.__implements_select__)
__implements_selectors__ = list(_green_select.__implements_selectors__)


def patch_select() -> None:
    """Install green `select.select` and `select.poll`."""
    for name in __implements__:
        patch_attr(_stdlib_select, name, getattr(_green_select, name))


def patch_selectors() -> None:
    """Install the green selector as `selectors.DefaultSelector` (and friends)."""
    for name in __implements_selectors__:
        patch_attr(_stdlib_selectors, name, getattr(_green_select, name))
