"""Run a patch when a module is first imported, not before: `when_imported`.

A patch of a module nobody imports costs its import: asyncio's takes about 20 ms,
a quarter of ``patch_all()``. `when_imported` patches at once if the module is
already loaded, else right after its body has run, through a finder at the head of
`sys.meta_path` that wraps the module's loader for that one import.

A patch is done only once the body has run to its end: finding the module is not
importing it (``importlib.util.find_spec(name)`` is a common probe for an optional
dependency), and a body that raises leaves no module to patch. Until then the
patch waits for the next attempt, and the finder stays while any patch waits.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["when_imported"]


def when_imported(name: str, patch: Callable[[], None]) -> None:
    """Call ``patch()`` now if module ``name`` is loaded, else just after it is imported."""
    if name in sys.modules:
        patch()
        return
    _finder.hooks.setdefault(name, []).append(patch)
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.hooks: dict[str, list[Callable[[], None]]] = {}

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.hooks:
            return None
        for finder in sys.meta_path:  # the spec the import would have found without us
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            spec: importlib.machinery.ModuleSpec | None = (
                find(fullname, path, target) if find is not None else None)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        # The hooks stay until the body has run (`_Loader.exec_module`): this spec may be
        # a probe that is never loaded, or its body may raise.
        spec.loader = _Loader(spec.loader, self, fullname)
        return spec

    def imported(self, fullname: str) -> None:
        """Module ``fullname``'s body has run: run its patches once, and leave if none wait."""
        patches = self.hooks.pop(fullname, [])
        if not self.hooks and self in sys.meta_path:
            sys.meta_path.remove(self)
        for patch in patches:
            patch()


class _Loader(importlib.abc.Loader):
    """The module's own loader, then the patches."""

    def __init__(self, loader: Any, finder: _Finder, fullname: str) -> None:
        self.loader = loader
        self.finder = finder
        self.fullname = fullname

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)  # type: ignore[no-any-return]  # the wrapped loader is Any

    def exec_module(self, module: types.ModuleType) -> None:
        # The module sees its own loader while its body runs (importlib.resources and
        # friends ask for it), as if we were never there.
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)  # if it raises, the patches wait for the next import
        self.finder.imported(self.fullname)

    def __getattr__(self, name: str) -> Any:  # get_source, is_package... of the real loader
        return getattr(self.loader, name)


_finder = _Finder()
