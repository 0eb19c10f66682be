"""The architecture, checked: imports point one way, and only named modules touch greenlet/signal.

docs/design.md §9: ``_core`` is self-contained; only ``_core/_greenthread.py`` and
``_core/_hub.py`` import greenlet; only ``_core/_preempt.py`` and ``_core/_signals.py`` import signal (and
``monkey/_signal.py``, the patch of the signal module itself); public
modules import the core, never the reverse. Read from each module's source with
`ast`, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import greensched

PACKAGE = Path(greensched.__file__).resolve().parent


def imports_of(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    package = ".".join(rel.parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def modules() -> dict[str, set[str]]:
    return {
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts): imports_of(p)
        for p in PACKAGE.rglob("*.py")
    }


def test_core_imports_nothing_from_outside_core() -> None:
    for name, imported in modules().items():
        if name.startswith("greensched._core"):
            outside = {m for m in imported if m.startswith("greensched")
                       and not m.startswith("greensched._core")}
            assert not outside, f"{name} imports {outside}"


def test_only_thread_and_hub_import_greenlet() -> None:
    users = {name for name, imported in modules().items()
             if any(m.split(".")[0] == "greenlet" for m in imported)}
    assert users == {"greensched._core._greenthread", "greensched._core._hub"}


def test_only_preempt_and_signals_import_signal() -> None:
    """The runtime's signals are _signals', _preempt's and _ticktimer's (SIGALRM's timer); the
    monkey layer only patches the module (its `signal` functions in _signal, `set_wakeup_fd` in
    _signal_wakeup)."""
    users = {name for name, imported in modules().items() if "signal" in {m.split(".")[0] for m in imported}}
    assert users == {"greensched._core._preempt", "greensched._core._signals", "greensched._core._ticktimer",
                     "greensched.monkey._signal", "greensched.monkey._signal_wakeup"}


def test_public_api_is_explicit() -> None:
    """__all__ lists exactly the public names, each of which exists."""
    assert sorted(greensched.__all__) == sorted(set(greensched.__all__))
    for name in greensched.__all__:
        assert hasattr(greensched, name), name
    source = (PACKAGE / "__init__.py").read_text()
    assert "import *" not in source


def test_only_the_runner_imports_the_monkey_layer() -> None:
    """Patches sit on top: nothing below them (core, public objects, net) imports them.

    The package's ``__init__`` re-exports ``patch_all`` (which imports each patch
    module only when it is asked for), and the runner uses it. Integrations sit
    above the patches: ``greensched.asyncio`` installs the asyncio patch on import.
    """
    above = ("greensched.__main__", "greensched.__init__", "greensched.asyncio",
             "greensched.celery")  # reads the psycopg patch's CANCEL_GRACE
    for name, imported in modules().items():
        if name.startswith("greensched.monkey") or name in above:
            continue
        assert not any(m.startswith("greensched.monkey") for m in imported), name


def import_graph() -> dict[str, set[str]]:
    """Module → the greensched modules it imports, anywhere in its source (lazy and
    ``TYPE_CHECKING`` imports too). ``from pkg import name`` is an edge to the module
    ``pkg.name`` when there is one (importing a submodule), else to ``pkg`` itself."""
    paths = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in paths)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    if sub in paths:
                        edges.add(sub)
                    elif module in paths:
                        edges.add(module)
        edges.discard(name)
        graph[name] = edges
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle of ``graph`` (its strongly connected components of two or more)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        order[node] = low[node] = len(order)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in order:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], order[nxt])
        if low[node] == order[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in order:
            visit(node)
    return cycles


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_anywhere() -> None:
    """docs/design.md §9: no import circle in greensched/, typing and lazy imports included."""
    graph = import_graph()
    assert "greensched._core._hub" in graph["greensched._core._introspect"]  # the finder sees edges
    cycles = import_cycles(graph)
    details = [{m: sorted(graph[m] & set(c)) for m in c} for c in cycles]
    assert not cycles, f"import cycles (module -> the cycle's modules it imports): {details}"
