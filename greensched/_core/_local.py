"""Each OS thread's hub: where `get_hub` finds it, without importing the hub's module.

The hub's module builds green threads (the main one) and so imports the thread's
module; a thread, asked to `start()`, must find its OS thread's hub. For the imports
to point one way (hub → thread, never back), the slot that holds each OS thread's
hub lives here, below both, and the hub's module tells it at import how a new hub
is made (`set_hub_factory`). ``import greensched`` imports the hub's module, so by
the time any code can start a thread the factory is there.
"""

from __future__ import annotations

import _thread
from collections.abc import Callable
from typing import Any

__all__ = ["get_hub", "existing_hub", "set_hub_factory", "slot"]

#: Per OS thread: ``hub``, and whatever must live and die with the OS thread beside it.
#: The OS-level original, captured before `patch_all()` can make `_thread` green.
slot = _thread._local()
_factory: Callable[[], Any] | None = None


def set_hub_factory(factory: Callable[[], Any]) -> None:
    """Called once, by `_hub`: how `get_hub` makes an OS thread's first hub."""
    global _factory
    _factory = factory


def get_hub() -> Any:
    """This OS thread's hub (a `_hub.Hub`), created on first use."""
    try:
        return slot.hub
    except AttributeError:
        if _factory is None:
            raise RuntimeError(
                "greensched's hub module was never imported: import greensched "
                "(not one of its private modules alone) before starting green threads"
            ) from None
        hub = slot.hub = _factory()
        return hub


def existing_hub() -> Any:
    """This OS thread's hub if it has one, else None (never creates one)."""
    return getattr(slot, "hub", None)
