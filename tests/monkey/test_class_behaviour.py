"""Every object patch_all() installs behaves, as a class or function, like the one it replaced.

Libraries do more with the stdlib's objects than call them: psycopg's pool
subclasses ``queue.Queue[T]``, type checkers and frameworks read
``inspect.signature``, loggers and pickle read ``__module__``/``__qualname__``. In a
fresh interpreter, under ``patch_all()``, this walks the originals registry (every
attribute patching replaced, with what it replaced) and compares each pair:

* subscripting (``Queue[int]``): allowed wherever the original allows it;
* subclassing: allowed wherever the original allows it, and the subclass works;
* ``inspect.signature``: where the original has one, the same parameters (one the
  original takes only by position may also take a keyword);
* ``__module__`` a greensched module, ``__qualname__`` a plain dotted name (no
  ``<locals>``), ``__name__`` the original's, except where `NAME_EXCEPTIONS` says why.
"""

from __future__ import annotations

import json
import sys

from tests.util import run_python

#: (module, attribute) -> why the green object's __name__ differs from the original's.
NAME_EXCEPTIONS = {
    ("_thread", "start_new"):
        "a deprecated alias: the original is itself start_new_thread under another name",
    ("_thread", "_local"): "the same class as threading.local, greensched.local",
    ("threading", "local"): "_thread._local's name; ours is greensched.local",
    ("threading", "Lock"):
        "the original is the factory function allocate_lock (3.11/3.12); ours is the class",
    ("threading", "_allocate_lock"): "the same as threading.Lock",
    ("threading", "excepthook"): "the original is _thread._excepthook; ours wraps it",
    ("selectors", "DefaultSelector"): "the original is an alias of EpollSelector; ours polls green",
    ("selectors", "PollSelector"): "one green selector class serves PollSelector and DefaultSelector",
    ("selectors", "SelectSelector"): "GreenSelectSelector: SelectSelector's rules (no regular files) "
                                     "over the green poller",
    # 3.13+: threading's copies of the thread-handle machinery
    ("threading", "_ThreadHandle"):
        "greensched's ThreadHandle class, installed under threading's private name",
    ("_thread", "_ThreadHandle"): "the same class as threading._ThreadHandle",
    ("threading", "_make_thread_handle"): "make_thread_handle, installed under threading's private name",
    ("threading", "_thread_shutdown"): "thread_shutdown, installed as threading's copy of _thread._shutdown",
}

#: (module, attribute) -> why the green object's parameters differ from the original's.
SIGNATURE_EXCEPTIONS = {
    ("_thread", "_local"): "3.13 reports () for the C class, which still takes a subclass's __init__ "
                           "arguments; ours says so: (*args, **kwargs)",
    ("threading", "local"): "the same class as _thread._local",
}

WALK = """
import greensched
greensched.patch_all()
import inspect, json, types
from greensched.monkey import _registry

def signature(obj):
    # Each parameter's kind, and its name unless positional-only (no caller can use it:
    # time.sleep's is "secs" in the docs and "object" in 3.13's C signature).
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return None
    return [[p.kind.name, "" if p.kind is p.POSITIONAL_ONLY else p.name] for p in params]

def subscriptable(cls):
    try:
        alias = cls[int]
    except TypeError:
        return False
    return isinstance(alias, types.GenericAlias) and alias.__origin__ is cls

def subclassable(cls):
    try:
        sub = type("Sub", (cls,), {})
    except TypeError:
        return False
    return issubclass(sub, cls)

rows = []
for (owner, name), old in sorted(_registry._originals.items()):
    new = getattr(_registry._resolve(owner), name)
    row = {"owner": owner, "name": name, "kind": type(new).__name__,
           "module": getattr(new, "__module__", None), "qualname": getattr(new, "__qualname__", None),
           "old_name": getattr(old, "__name__", None), "new_name": getattr(new, "__name__", None),
           "callable": callable(old) and callable(new)}
    if isinstance(old, type):
        row["old_subscript"] = subscriptable(old)
        row["new_subscript"] = isinstance(new, type) and subscriptable(new)
        row["old_subclass"] = subclassable(old)
        row["new_subclass"] = isinstance(new, type) and subclassable(new)
    if row["callable"]:
        row["old_sig"], row["new_sig"] = signature(old), signature(new)
    rows.append(row)
print(json.dumps(rows))
"""


def accepts(new: object, old: list[list[str]]) -> bool:
    """Does a function with parameters ``new`` take every call ``old`` takes?

    The same parameters in the same order; one the original takes only by position may
    take a keyword too (a Python twin of a C function); a keyword-capable one keeps its name.
    """
    if not isinstance(new, list) or len(new) != len(old):
        return False
    for (new_kind, new_name), (old_kind, old_name) in zip(new, old, strict=True):
        if old_kind == "POSITIONAL_ONLY":
            if new_kind not in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD"):
                return False
        elif (new_kind, new_name) != (old_kind, old_name):
            return False
    return True


def walk() -> list[dict[str, object]]:
    proc = run_python(WALK)
    assert proc.returncode == 0, proc.stderr
    rows: list[dict[str, object]] = json.loads(proc.stdout)
    assert len(rows) > 30, rows  # the walk saw what patch_all installs, not an empty registry
    return rows


def test_every_patched_object_keeps_the_originals_class_behaviour() -> None:
    problems = []
    for row in walk():
        where = f"{row['owner']}.{row['name']}"
        if row.get("old_subscript") and not row["new_subscript"]:
            problems.append(f"{where}: the original is subscriptable, the green one is not")
        if row.get("old_subclass") and not row["new_subclass"]:
            problems.append(f"{where}: the original can be subclassed, the green one cannot")
        if (row["callable"] and row["old_sig"] is not None and not accepts(row["new_sig"], row["old_sig"])
                and (row["owner"], row["name"]) not in SIGNATURE_EXCEPTIONS):
            problems.append(f"{where}: signature {row['new_sig']} instead of the original's {row['old_sig']}")
        if row["kind"] in ("type", "ABCMeta", "function"):
            if not str(row["module"]).startswith("greensched"):
                problems.append(f"{where}: __module__ {row['module']!r} is not greensched's")
            if "<" in str(row["qualname"]):
                problems.append(f"{where}: __qualname__ {row['qualname']!r} is not importable")
            key = (row["owner"], row["name"])
            if row["old_name"] != row["new_name"] and key not in NAME_EXCEPTIONS:
                problems.append(f"{where}: named {row['new_name']!r}, the original {row['old_name']!r}")
    assert not problems, "\n".join(problems)


def test_the_name_exceptions_are_all_still_needed() -> None:
    """A stale exception would hide a future regression: each must match a real difference."""
    rows = walk()
    here = {(r["owner"], r["name"]) for r in rows}  # the 3.13-only entries exist only there
    differing = {(r["owner"], r["name"]) for r in rows if r["old_name"] != r["new_name"]}
    stale = (set(NAME_EXCEPTIONS) & here) - differing
    assert not stale, stale
    sig_differing = {(r["owner"], r["name"]) for r in rows
                     if r["callable"] and r["old_sig"] is not None
                     and not accepts(r["new_sig"], r["old_sig"])}
    stale = (set(SIGNATURE_EXCEPTIONS) & here) - sig_differing
    if sys.version_info >= (3, 13):  # before 3.13 _thread._local has no signature at all
        assert not stale, stale


def test_generic_queues_and_the_libraries_that_subclass_them() -> None:
    proc = run_python(
        """
        import greensched
        greensched.patch_all()
        import queue, subprocess, inspect
        from typing import Generic, TypeVar
        T = TypeVar("T")
        for cls in (queue.Queue, queue.LifoQueue, queue.PriorityQueue, queue.SimpleQueue):
            assert cls.__module__ == "greensched.queue", cls
            assert cls[int].__origin__ is cls
        class Jobs(queue.Queue[T], Generic[T]):   # what psycopg_pool does
            pass
        jobs: "Jobs[int]" = Jobs()
        jobs.put(1)
        assert jobs.get() == 1 and isinstance(jobs, queue.Queue)
        assert subprocess.Popen[bytes].__origin__ is subprocess.Popen
        assert "stdout" in inspect.signature(subprocess.Popen).parameters
        import psycopg, psycopg_pool   # psycopg's import failed on the unsubscriptable Queue
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
