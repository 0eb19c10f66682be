"""The runtimes under comparison, and how each one is set up in a fresh process.

Thread-like runtimes run the *same* plain blocking workload code after their own
patching; asyncio and uvloop run the workload's coroutine twin:

============  =================================  ===================================
runtime       set-up                              unpatched ``time.sleep``
============  =================================  ===================================
greensched    ``greensched.patch_all()``          ``greensched.monkey.original("time", "sleep")``
gevent        ``gevent.monkey.patch_all()``       ``gevent.monkey.get_original("time", "sleep")``
eventlet      ``eventlet.monkey_patch()``         ``eventlet.patcher.original("time").sleep``
threads       nothing: real OS threads            ``time.sleep``
asyncio       ``asyncio.Runner()``                ``time.sleep``
uvloop        ``asyncio.Runner(loop_factory=uvloop.new_event_loop)``  ``time.sleep``
============  =================================  ===================================

This module imports nothing that would spoil patching (no ``threading``,
``socket``...) at import time: the worker imports it, patches, and only then
imports the workloads.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

SleepFn = Callable[[float], None]


def _patch_greensched() -> SleepFn:
    import greensched
    import greensched.monkey

    greensched.patch_all()
    return greensched.monkey.original("time", "sleep")


def _patch_gevent() -> SleepFn:
    from gevent import monkey

    monkey.patch_all()
    return monkey.get_original("time", "sleep")


def _patch_eventlet() -> SleepFn:
    import eventlet
    import eventlet.patcher

    eventlet.monkey_patch()
    return eventlet.patcher.original("time").sleep


def _no_patch() -> SleepFn:
    import time

    return time.sleep


def _run_asyncio(coro: Coroutine[Any, Any, Any]) -> Any:
    import asyncio

    with asyncio.Runner() as runner:
        return runner.run(coro)


def _run_uvloop(coro: Coroutine[Any, Any, Any]) -> Any:
    import asyncio

    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


@dataclass(frozen=True)
class Runtime:
    """One column of the table."""

    name: str
    kind: Literal["threaded", "async"]
    #: Importable modules this runtime needs (checked without importing them).
    modules: tuple[str, ...]
    #: What to do when one is missing.
    install_hint: str
    #: Patch the stdlib (if this runtime does) and return the unpatched time.sleep.
    setup: Callable[[], SleepFn]
    #: For async runtimes: run a coroutine to completion on this runtime's loop.
    run_coroutine: Callable[[Coroutine[Any, Any, Any]], Any] | None = None

    def missing(self) -> str | None:
        """Why this runtime cannot run here, or None when it can."""
        absent = [m for m in self.modules if importlib.util.find_spec(m) is None]
        if absent:
            return f"{', '.join(absent)} not installed ({self.install_hint})"
        return None


_VENV_PIP = ".venv/bin/pip install"

ALL: list[Runtime] = [
    Runtime("greensched", "threaded", ("greensched", "greenlet"),
            f"{_VENV_PIP} -e .", _patch_greensched),
    Runtime("gevent", "threaded", ("gevent",), f"{_VENV_PIP} gevent", _patch_gevent),
    Runtime("eventlet", "threaded", ("eventlet",), f"{_VENV_PIP} eventlet", _patch_eventlet),
    Runtime("threads", "threaded", (), "", _no_patch),
    Runtime("asyncio", "async", (), "", _no_patch, _run_asyncio),
    Runtime("uvloop", "async", ("uvloop",), f"{_VENV_PIP} uvloop", _no_patch, _run_uvloop),
]

#: The baseline every ratio is computed against.
BASELINE = "gevent"

_BY_NAME = {r.name: r for r in ALL}


def get(name: str) -> Runtime:
    """The runtime called ``name``; ValueError naming the known ones otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown runtime {name!r}; known: {', '.join(_BY_NAME)}") from None


def names() -> list[str]:
    """Every runtime name, in column order."""
    return list(_BY_NAME)
