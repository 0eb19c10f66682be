"""Green `threading` and `queue`: threads become green threads.

`threading` is written on top of a handful of `_thread` primitives, which it copies
into its own namespace at import. Replacing those copies makes `threading.Thread`,
`Timer`, `Condition`, `Event`, `Semaphore`, `Barrier`,
`concurrent.futures.ThreadPoolExecutor` and everything built on them green, while
keeping the stdlib's own Python code and semantics:

* ``_start_new_thread`` spawns a green thread;
* ``Lock``/``_allocate_lock`` and the RLock class are green locks; ``local`` is
  `greensched.local`;
* ``get_ident`` tells green threads apart; the main green thread keeps the OS
  thread's ident, so `threading.main_thread()` stays who it was;
* ``_set_sentinel`` (the lock a thread's OS-level state releases when it dies, which
  ``join()`` and interpreter exit wait for) becomes a green lock released when the
  green thread ends.

`threading`'s own module-level locks (``_active_limbo_lock``,
``_shutdown_locks_lock``), made before patching, are replaced too: a green thread
preempted while holding a real lock would block every other one that wants it.
`queue.Queue`, `LifoQueue`, `PriorityQueue` and `SimpleQueue` become greensched's.

The `_thread` module itself is left alone, on purpose. The import system takes its
module locks from ``_thread.allocate_lock`` and names owners with
``_thread.get_ident``, in every OS thread, including `to_thread`'s pool threads:
green locks there would be waited on from OS threads whose hub cannot be woken by
the lock's. Real import locks keyed by the OS thread stay correct because an
import is never preempted (see ``_core/_preempt.py``). Code that starts threads or
makes locks through ``_thread`` directly gets OS-level ones.

By design, a green thread is not an OS thread: ``_thread._count()``,
``get_native_id()`` and ``threading.Thread.native_id`` still count and name OS
threads.

Python 3.13 reworked these internals (``start_joinable_thread`` and thread
handles); patching them there is not supported yet, and says so.
"""

from __future__ import annotations

import queue as _stdlib_queue
import sys
import threading as _stdlib_threading
import types
from typing import Any, Callable, Optional

from .. import queue as _green_queue
from .. import sync as _green_sync
from .._core._hub import get_hub
from .._core._preempt import mark_root
from .._core._thread import GreenThread
from ..local import local as _green_local
from ._registry import patch_attr

__implements__ = ["_start_new_thread", "_allocate_lock", "_set_sentinel", "get_ident", "Lock",
                  "_CRLock", "local", "_active_limbo_lock", "_shutdown_locks_lock"]
__implements_queue__ = ["Queue", "LifoQueue", "PriorityQueue", "SimpleQueue"]

#: Sentinel locks of running green threads, by ident, released when the thread ends.
_sentinels: dict[int, list[Any]] = {}


def get_ident() -> int:
    """The current green thread's ident; the main green thread has its OS thread's."""
    hub = get_hub()
    current = hub.current
    if current is None or current is hub.main:
        return hub.os_thread_id
    return current.ident


def start_new_thread(function: Callable[..., Any], args: tuple[Any, ...],
                     kwargs: Optional[dict[str, Any]] = None) -> int:
    """`_thread.start_new_thread`, green (as `threading` calls it): returns the new ident."""
    if not callable(function):
        raise TypeError("first arg must be callable")
    if not isinstance(args, tuple):
        raise TypeError("2nd arg must be a tuple")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError("optional 3rd arg must be a dictionary")
    thread = GreenThread(target=_run, args=(function, args, kwargs or {}), daemon=True)
    thread.start()
    return thread.ident


def _run(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Body of a `start_new_thread` thread: as `_thread` does, report what escapes."""
    try:
        function(*args, **kwargs)
    except SystemExit:
        pass
    except BaseException as exc:  # _thread reports through sys.unraisablehook
        sys.unraisablehook(types.SimpleNamespace(
            exc_type=type(exc), exc_value=exc, exc_traceback=exc.__traceback__,
            err_msg="Exception ignored in thread started by", object=function))
    finally:
        for lock in _sentinels.pop(get_ident(), ()):
            if lock.locked():
                lock.release()


# User code runs under _run: without this mark the preemptor would take the whole
# stack for greensched's own (atomic) code and never preempt a threading.Thread.
mark_root(_run)


def _set_sentinel() -> Any:
    """A lock that is released when the calling green thread ends."""
    lock = _green_sync.Lock()
    _sentinels.setdefault(get_ident(), []).append(lock)
    return lock


def patch() -> None:
    """Install the green thread primitives into `threading` and `queue`."""
    if sys.version_info >= (3, 13):
        raise NotImplementedError(
            "patching threading is not supported on Python 3.13 yet (its thread handles are "
            "new); use patch_all(threading=False) and greensched.spawn/GreenThread directly"
        )
    in_threading = {
        "_start_new_thread": start_new_thread,
        "_allocate_lock": _green_sync.Lock,
        "_set_sentinel": _set_sentinel,
        "get_ident": get_ident,
        "Lock": _green_sync.Lock,
        "_CRLock": _green_sync.RLock,
        "local": _green_local,
        "_active_limbo_lock": _green_sync.RLock(),
        "_shutdown_locks_lock": _green_sync.Lock(),
    }
    for name in __implements__:
        patch_attr(_stdlib_threading, name, in_threading[name])
    for name in __implements_queue__:
        patch_attr(_stdlib_queue, name, getattr(_green_queue, name))
