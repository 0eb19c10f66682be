"""Python 3.11 and 3.12: a thread's end is a sentinel lock released.

On these versions `threading.Thread._bootstrap_inner` asks ``_set_sentinel()``
for a lock, which the OS thread's state releases when the thread dies; ``join()``
and interpreter exit wait for it. The green sentinel is a green lock, released
by `release_sentinels` when the green thread's body ends. (3.13 replaced the
sentinels with thread handles: `_thread_handles`.)
"""

from __future__ import annotations

from typing import Any

from .. import sync as _green_sync
from .._core._greenthread import GreenThread
from .._core._hub import get_hub

# `_set_sentinel` keeps the name of the `_thread` function it stands in for.
__all__ = ["_set_sentinel", "release_sentinels"]

#: Sentinel locks of running green threads, by thread, released when the thread ends.
_sentinels: dict[GreenThread | None, list[Any]] = {}


def _set_sentinel() -> Any:
    """`_thread._set_sentinel`, green: a lock released when the calling green thread ends."""
    lock = _green_sync.Lock()
    _sentinels.setdefault(get_hub().current, []).append(lock)
    return lock


def release_sentinels() -> None:
    """Release the calling green thread's sentinels: it is ending."""
    for lock in _sentinels.pop(get_hub().current, ()):
        if lock.locked():
            lock.release()
