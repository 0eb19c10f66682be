"""Green asyncio: an event loop per green thread, whose waits park that green thread.

asyncio keeps two things per OS thread, and green threads share their OS thread:

* the *running loop*. The C `_asyncio` module holds it in the OS thread's state, so a
  second green thread calling ``asyncio.run()`` while another's loop runs is told
  "asyncio.run() cannot be called from a running event loop". `install` replaces
  ``_get_running_loop``, ``_set_running_loop``, ``get_running_loop`` and
  ``get_event_loop`` (and ``_get_event_loop`` on 3.11) in `asyncio.events`, in the
  `asyncio` package, and wherever a loaded module copied the C functions with
  ``from asyncio import get_running_loop``; on 3.12 and 3.13, whose
  ``asyncio.current_task`` is C and reads the C holder, it is wrapped too. The
  running loop lives in a dict keyed by the green thread (the main green thread of
  an OS thread, and code in no green thread at all, by the OS thread's ident). The
  C holder is never set again: C code that looks for the running loop (a Future
  made with no loop) finds none there and asks the policy's ``get_event_loop()``,
  which is patched to answer with this green thread's running loop first.
* the *event loop policy's current loop* (``set_event_loop``/``get_event_loop``), in
  a `threading.local` subclass, ``BaseDefaultEventLoopPolicy._Local``: it becomes a
  `greensched.local` subclass, and a policy that already exists gets a fresh one
  holding what the installing thread had.

And the loop's wait: a selector loop calls ``selector.select(timeout)`` when it has
nothing to do. With the stdlib's epoll selector that blocks the OS thread and every
green thread on it (under ``patch_all()`` the green ``DefaultSelector`` parks, but it
registers every fd with the netpoller on every wait). Loops made after `install`
without an explicit selector (or with a plain stdlib epoll one) get a `HubSelector`:
a real epoll selector whose own fd (an epoll fd is readable when any fd in it is
ready) is the one fd the hub's netpoller watches, so a wait costs the same whatever the number of sockets, and
`HubSelector.wakeup` lets another green thread of the same OS thread wake the loop
without a syscall (the loop's ``call_soon_threadsafe`` writes its self-pipe).

Checked against the asyncio sources of CPython 3.11.7, 3.12.1 and 3.13.0: their
Python code reads these functions from the `events` module at call time (``events.
get_running_loop()``), so replacing the module attributes reaches them; only the
package namespace and third-party copies hold the objects themselves.
"""

from __future__ import annotations

import _thread
import asyncio
import os
import selectors
import sys
import types
from asyncio import events as _events, selector_events as _selector_events, tasks as _tasks
from collections.abc import Callable
from typing import Any

from .._core._hub import existing_hub, get_hub
from .._core._netpoll import EVENT_READ
from .._core._parking import ParkToken
from .._core._preempt import mark_root as mark_root  # for greensched.asyncio's thread bodies
from ..local import local as _green_local
from ._registry import original, patch_attr

__all__ = ["install", "installed", "HubSelector", "EventLoop", "Waiter"]

__implements__ = ["_get_running_loop", "_set_running_loop", "get_running_loop", "get_event_loop"]
if hasattr(_events, "_get_event_loop"):  # 3.11 only (removed in 3.12)
    __implements__.append("_get_event_loop")
_C_CURRENT_TASK = sys.version_info >= (3, 12)  # 3.12+: asyncio.current_task is C

#: `_thread.get_ident` stays the OS thread's ident under patch_all (see _threading).
_os_ident = _thread.get_ident

#: The running loop of each green thread (or OS thread), see `_key`. An entry goes
#: when its loop stops (``run_forever`` always resets it in a ``finally``).
_running: dict[Any, Any] = {}

_installed = False


def installed() -> bool:
    """Has `install` run (through ``patch_all()`` or ``import greensched.asyncio``)?"""
    return _installed


def _key() -> Any:
    """Whose running loop: the green thread, or the OS thread outside other green threads.

    The main green thread of an OS thread is keyed by the OS thread's ident, as is code
    running where no hub exists yet, so a loop set before the thread's hub was made
    (its first park creates it) is still found after. The hub is looked up, never
    made: an OS thread that merely asks for its running loop gets no hub.
    """
    hub = existing_hub()
    if hub is not None:
        current = hub.current
        if current is not None and current is not hub.main:
            return current
    return _os_ident()


def _get_running_loop() -> Any:
    """The running event loop of the current green thread, or None."""
    return _running.get(_key())


def _set_running_loop(loop: Any) -> None:
    """Set (or with None, clear) the running event loop of the current green thread."""
    if loop is None:
        _running.pop(_key(), None)
    else:
        _running[_key()] = loop


def get_running_loop() -> Any:
    """Return the running event loop of the current green thread; RuntimeError if none."""
    loop = _running.get(_key())
    if loop is None:
        raise RuntimeError("no running event loop")
    return loop


def get_event_loop() -> Any:
    """The running loop of the current green thread, else the policy's current loop."""
    loop = _running.get(_key())
    if loop is not None:
        return loop
    return _events.get_event_loop_policy().get_event_loop()


def _framed_as_asyncio(fn: Callable[..., Any]) -> Any:
    """``fn`` again, its frames naming ``asyncio.events`` as their module.

    The policy's ``get_event_loop`` (3.12, 3.13) warns "There is no current event
    loop" at the first frame up the stack whose module is not ``asyncio`` or
    ``asyncio.*``: the caller's line. Our wrappers stand between the caller and it,
    and the warning named greensched/monkey/_asyncio.py instead (CPython's
    test_asyncio.test_events checks the file name). The function keeps its code,
    names and ``__module__``; its globals become a fixed dict of the globals it
    reads (bound once, at import), under asyncio's module name.
    """
    module_globals = fn.__globals__
    namespace = {name: module_globals[name] for name in fn.__code__.co_names if name in module_globals}
    namespace.update(__name__="asyncio.events", __builtins__=module_globals["__builtins__"])
    framed = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    framed.__qualname__, framed.__module__, framed.__doc__ = fn.__qualname__, fn.__module__, fn.__doc__
    return framed


get_event_loop = _framed_as_asyncio(get_event_loop)


def _get_event_loop(stacklevel: int = 3) -> Any:
    """3.11's internal twin of `get_event_loop` (futures, streams and tasks call it)."""
    return get_event_loop()


_c_current_task: Callable[..., Any] | None = None


def current_task(loop: Any = None) -> Any:
    """The task running on ``loop`` (default: this green thread's running loop), or None."""
    if loop is None:
        loop = get_running_loop()
    assert _c_current_task is not None
    return _c_current_task(loop)


def _forget_after_fork() -> None:
    # As the C holder does (it compares the pid): a forked child runs no loop yet.
    _running.clear()


# -- the policy's per-thread state -------------------------------------------------------


class _Local(_green_local):
    """``BaseDefaultEventLoopPolicy._Local``, one per green thread."""

    _loop: Any = None
    _set_called = False


_policy_get_event_loop: Callable[[Any], Any] = _events.BaseDefaultEventLoopPolicy.get_event_loop


def _policy_get_event_loop_green(self: Any) -> Any:
    """The policy's ``get_event_loop``, answering with the running loop first.

    C code asks the policy when it finds no running loop in the C holder, which
    `install` leaves empty: a ``Future()`` made with no loop inside a coroutine must
    still get the loop that runs it.
    """
    loop = _running.get(_key())
    if loop is not None:
        return loop
    return _policy_get_event_loop(self)


_policy_get_event_loop_green = _framed_as_asyncio(_policy_get_event_loop_green)


# -- the loop's wait ------------------------------------------------------------------------

_OSSelector: Any = original("selectors", "DefaultSelector")
if not hasattr(_OSSelector, "fileno"):  # pragma: no cover - poll/select only platforms
    _OSSelector = None


class _HubSelectorBase(_OSSelector or selectors.PollSelector):  # type: ignore[misc]
    pass


class HubSelector(_HubSelectorBase):
    """An epoll (kqueue) selector whose waits park the green thread on the hub.

    ``select(timeout)`` with a timeout other than 0 parks until its own fd is readable
    (some fd in it is ready), the timeout passes, or `wakeup` is called, then asks the
    kernel without waiting. Everything else is the stdlib selector's. On a platform
    whose selectors have no fd (poll, select), the wait falls back to watching every
    registered fd, as the green ``DefaultSelector`` does.
    """

    def __init__(self) -> None:
        super().__init__()
        self._sleeper: ParkToken | None = None  # the park of the thread in select()
        self._poked = False
        self._hub: Any = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if self._poked:  # woken while it was not parked: its caller has work to look at
            self._poked = False
            return super().select(0)  # type: ignore[no-any-return]
        if timeout is not None and timeout <= 0:
            return super().select(0)  # type: ignore[no-any-return]
        # Park first, look after: if an fd is ready, the hub's next poll (at once, or
        # after the threads ready now) sees this selector's fd readable and wakes us.
        # Looking first would cost a syscall on every wait.
        hub = self._hub = get_hub()
        token = self._sleeper = hub.prepare_park()
        try:
            if _OSSelector is not None:
                hub.wait_fd(self.fileno(), EVENT_READ, timeout, self, token)
            else:  # pragma: no cover
                hub.wait_fds([key.fd for key in self._fd_to_key.values()
                              if key.events & selectors.EVENT_READ],
                             [key.fd for key in self._fd_to_key.values()
                              if key.events & selectors.EVENT_WRITE], timeout, token)
        finally:
            self._sleeper = None
        if self._poked:
            self._poked = False
            return []  # the caller has callbacks to run; fds are looked at next time
        return super().select(0)  # type: ignore[no-any-return]

    def wakeup(self) -> None:
        """Make a parked ``select()`` return now, or the next one not wait.

        For green threads of the OS thread that runs the selector's loop (no syscall);
        from other OS threads use the loop's ``call_soon_threadsafe``.
        """
        self._poked = True
        token = self._sleeper
        if token is not None:  # parked in our wait_fd (nowhere else while it is set)
            self._hub.unpark(token, True)

    def close(self) -> None:
        if _OSSelector is not None and self._selector is not None:
            try:
                fd = self.fileno()
            except (OSError, ValueError):
                fd = -1
            if fd >= 0 and self._hub is not None:
                self._hub.notify_fd_closed(fd)  # the registration is kept between waits
        super().close()


class EventLoop(asyncio.SelectorEventLoop):
    """A selector event loop that parks its green thread while it waits (`HubSelector`).

    ``asyncio.Runner(loop_factory=greensched.asyncio.EventLoop)`` or, on 3.12+,
    ``asyncio.run(main(), loop_factory=...)`` give one explicitly; after `install`
    the default policy's loops are made like this anyway.
    """

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        super().__init__(selector if selector is not None else HubSelector())


_loop_init: Callable[..., None] = _selector_events.BaseSelectorEventLoop.__init__


def _loop_init_green(self: Any, selector: selectors.BaseSelector | None = None) -> None:
    """``BaseSelectorEventLoop.__init__``: a loop given no selector gets a `HubSelector`.

    So does one given a plain stdlib epoll (kqueue) selector, which would block the OS
    thread: it becomes a `HubSelector` in place (the same object and registrations;
    the class adds three attributes). Subclasses and other selectors are left alone.
    """
    if selector is None:
        selector = HubSelector()
    elif _OSSelector is not None and type(selector) is _OSSelector:
        selector.__class__ = HubSelector
        selector._sleeper = None  # type: ignore[attr-defined]
        selector._poked = False  # type: ignore[attr-defined]
        selector._hub = None  # type: ignore[attr-defined]
    _loop_init(self, selector)


class Waiter:
    """One green thread waits (`wait`) until another of its OS thread calls `set`.

    A one-shot `greensched.Event` for a single waiter, without its wait queue: what
    ``greensched.asyncio.run_coroutine`` parks on, once per call.
    """

    __slots__ = ("_hub", "_token", "_flag", "_reason")

    def __init__(self, reason: str) -> None:
        self._hub = get_hub()
        self._token: ParkToken | None = None
        self._flag = False
        self._reason = reason  # what the deadlock report and dump_stacks() show

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float | None = None) -> bool:
        """Park until `set` (True) or ``timeout`` seconds pass (False)."""
        if self._flag:
            return True
        hub = self._hub
        token = self._token = hub.prepare_park()
        try:
            hub.park(token, self._reason, timeout)
        finally:
            self._token = None
        return self._flag

    def set(self) -> None:
        self._flag = True
        token = self._token
        if token is not None:
            self._hub.unpark(token)


# -- installing ------------------------------------------------------------------------------


def install() -> None:
    """Make asyncio's running loop, current loop and loop waits per green thread (idempotent).

    Call it before event loops are made: a loop made earlier keeps its blocking
    selector, and a policy's current loops of other OS threads are forgotten.
    """
    global _installed, _c_current_task
    if _installed:
        return
    _installed = True
    ours: dict[str, Any] = {
        "_get_running_loop": _get_running_loop, "_set_running_loop": _set_running_loop,
        "get_running_loop": get_running_loop, "get_event_loop": get_event_loop,
    }
    if "_get_event_loop" in __implements__:
        ours["_get_event_loop"] = _get_event_loop
    # Whatever the functions were before (C or Python), replaced wherever they were copied.
    theirs = {id(getattr(_events, name)): ours[name] for name in ours}
    if _C_CURRENT_TASK and _tasks.current_task is not getattr(_tasks, "_py_current_task", None):
        _c_current_task = _tasks.current_task
        theirs[id(_c_current_task)] = current_task
        patch_attr(_tasks, "current_task", current_task)
    for name, value in ours.items():
        patch_attr(_events, name, value)
    _replace_copies(theirs)

    patch_attr(_events.BaseDefaultEventLoopPolicy, "_Local", _Local,
               owner="asyncio.events.BaseDefaultEventLoopPolicy")
    patch_attr(_events.BaseDefaultEventLoopPolicy, "get_event_loop", _policy_get_event_loop_green,
               owner="asyncio.events.BaseDefaultEventLoopPolicy")
    policy = getattr(_events, "_event_loop_policy", None)
    if isinstance(policy, _events.BaseDefaultEventLoopPolicy):
        old = getattr(policy, "_local", None)
        local = _Local()
        local._loop = getattr(old, "_loop", None)
        local._set_called = getattr(old, "_set_called", False)
        policy._local = local  # type: ignore[attr-defined]
    patch_attr(_selector_events.BaseSelectorEventLoop, "__init__", _loop_init_green,
               owner="asyncio.selector_events.BaseSelectorEventLoop")
    os.register_at_fork(after_in_child=_forget_after_fork)


def _replace_copies(theirs: dict[int, Any]) -> None:
    """Replace, in every loaded module, names bound to the functions being replaced.

    ``asyncio/__init__.py`` re-exports them (``from .events import *``), and libraries
    copy them at import (``from asyncio import get_running_loop``).
    """
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict) or module is _events or namespace is globals():
            continue  # (ours keeps the C current_task it wraps)
        for name, value in list(namespace.items()):
            replacement = theirs.get(id(value))
            if replacement is not None and replacement is not value and callable(value):
                namespace[name] = replacement
