"""local: attributes with one value per green thread, like `threading.local`.

`threading.local` keeps a dict per OS thread; all green threads of an OS thread
would share it. This one keeps a dict per green thread, created on the thread's
first access (calling the subclass's ``__init__`` with the constructor's
arguments, as `threading.local` does) and dropped when the thread is gone.
"""

from __future__ import annotations

import weakref
from typing import Any

from ._core._hub import get_hub

__all__ = ["local"]


def _key_of_current() -> Any:
    """The running green thread, or the hub of this OS thread inside a callback."""
    hub = get_hub()
    return hub.current if hub.current is not None else hub


class local:
    """One attribute namespace per green thread (shaped like `threading.local`)."""

    __slots__ = ("_local__args", "_local__dicts", "__weakref__")

    def __new__(cls, *args: Any, **kwargs: Any) -> local:
        if (args or kwargs) and cls.__init__ is object.__init__:
            raise TypeError("Initialization arguments are not supported")
        self = object.__new__(cls)
        object.__setattr__(self, "_local__args", (args, kwargs))
        object.__setattr__(self, "_local__dicts", weakref.WeakKeyDictionary())
        return self

    def _local__dict(self) -> dict[str, Any]:
        dicts = object.__getattribute__(self, "_local__dicts")
        key = _key_of_current()
        found = dicts.get(key)
        if found is None:
            found = dicts[key] = {}
            args, kwargs = object.__getattribute__(self, "_local__args")
            if type(self).__init__ is not object.__init__:
                type(self).__init__(self, *args, **kwargs)
        return found  # type: ignore[no-any-return]  # an attribute looked up by name is Any

    def __getattribute__(self, name: str) -> Any:
        if name in ("__dict__",):
            return object.__getattribute__(self, "_local__dict")()
        if name.startswith("_local__"):
            return object.__getattribute__(self, name)
        namespace = object.__getattribute__(self, "_local__dict")()
        if name in namespace:
            return namespace[name]
        try:
            return object.__getattribute__(self, name)  # methods, class attributes
        except AttributeError:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "__dict__":
            raise AttributeError(f"{type(self).__name__!r} object attribute '__dict__' is read-only")
        if isinstance(getattr(type(self), name, None), property):
            object.__setattr__(self, name, value)
            return
        object.__getattribute__(self, "_local__dict")()[name] = value

    def __delattr__(self, name: str) -> None:
        if name == "__dict__":
            raise AttributeError(f"{type(self).__name__!r} object attribute '__dict__' is read-only")
        namespace = object.__getattribute__(self, "_local__dict")()
        try:
            del namespace[name]
        except KeyError:
            raise AttributeError(name) from None
