"""The originals registry: what patching replaced, so it can be found again.

Every patch goes through `patch_attr`, which saves the attribute it replaces the
first time, and never saves a green object as an "original" (patching twice is
harmless). `original` answers with the saved object, or with the module's current
attribute when it was never patched.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["patch_attr", "mark_module", "original", "is_patched", "is_module_patched", "patched_names"]

_MISSING: Any = object()

#: (module name, attribute) -> the object patching replaced (or _MISSING)
_originals: dict[tuple[str, str], Any] = {}

#: Modules made green by a hook of their own rather than by replacing an attribute
#: (psycopg2's wait callback).
_marked: set[str] = set()

#: gevent's names for modules, as libraries pass them to ``is_module_patched``.
_ALIASES = {"thread": "_thread"}


def patch_attr(module: Any, name: str, value: Any, owner: str | None = None) -> None:
    """Set ``module.name = value``, remembering the first original.

    ``owner`` names a class inside a module (``"ssl.SSLContext"``) for the registry;
    by default the module's own name is used.
    """
    key = (owner or module.__name__, name)
    if key not in _originals:
        _originals[key] = getattr(module, name, _MISSING)
    setattr(module, name, value)


def original(module_name: str, name: str) -> Any:
    """The stdlib's own ``module_name.name``, as it was before greensched patched it.

    ``original("time", "sleep")`` is the C-level, OS-thread-blocking sleep;
    ``original("ssl.SSLContext", "sslsocket_class")`` works for class attributes.
    Raises AttributeError if the owner never had that attribute.
    """
    value = _originals.get((module_name, name), _MISSING)
    if value is _MISSING:
        if (module_name, name) in _originals:
            raise AttributeError(f"{module_name}.{name} did not exist before greensched added it")
        value = getattr(_resolve(module_name), name)
    return value


def _resolve(dotted: str) -> Any:
    """A module, or a class inside one, by dotted name."""
    try:
        return importlib.import_module(dotted)
    except ImportError:
        parent, _, attr = dotted.rpartition(".")
        if not parent:
            raise
        return getattr(_resolve(parent), attr)


def is_patched(module_name: str, name: str | None = None) -> bool:
    """Has greensched patched ``module_name`` (or its attribute ``name``)?"""
    if name is not None:
        return (module_name, name) in _originals
    return any(module == module_name for module, _ in _originals)


def mark_module(module_name: str) -> None:
    """Record that ``module_name`` was made green through a hook it offers (no attribute)."""
    _marked.add(module_name)


def is_module_patched(name: str) -> bool:
    """Has ``patch_all()`` made the module ``name`` green? As ``gevent.monkey.is_module_patched``.

    For libraries that pick a blocking or a cooperative strategy at import: ``True``
    for ``"socket"``, ``"select"``, ``"threading"``, ``"time"``... once patched (gevent's
    ``"thread"`` means ``"_thread"``), and for drivers greensched made green, such as
    ``"psycopg2"`` and ``"psycopg"`` (also their submodules it patched, such as
    ``"psycopg.waiting"``). Never imports anything.
    """
    name = _ALIASES.get(name, name)
    prefix = name + "."  # a class or submodule patched inside it counts: "ssl.SSLContext"
    return name in _marked or any(owner == name or owner.startswith(prefix) for owner, _ in _originals)


def patched_names(module_name: str) -> list[str]:
    """The attributes of ``module_name`` that greensched has replaced, sorted."""
    return sorted(name for module, name in _originals if module == module_name)
