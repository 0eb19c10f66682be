"""Green `threading` and `queue`: threads become green threads.

`threading` is written on top of a handful of `_thread` primitives, which it copies
into its own namespace at import. Replacing those copies makes `threading.Thread`,
`Timer`, `Condition`, `Event`, `Semaphore`, `Barrier`,
`concurrent.futures.ThreadPoolExecutor` and everything built on them green, while
keeping the stdlib's own Python code and semantics:

* ``_start_new_thread`` spawns a green thread;
* ``Lock``/``_allocate_lock`` and the RLock class are green locks; ``local`` is
  `greensched.local`; ``Event`` is `greensched.Event`, lighter than threading's
  own (a flag and a wait queue), and every ``Thread`` makes one;
* ``get_ident`` tells green threads apart; the main green thread keeps the OS
  thread's ident, so `threading.main_thread()` stays who it was;
* ``_set_sentinel`` (the lock a thread's OS-level state releases when it dies, which
  ``join()`` and interpreter exit wait for) becomes a green lock released when the
  green thread ends.

`threading`'s own module-level locks (``_active_limbo_lock``,
``_shutdown_locks_lock``), made before patching, are replaced too: a green thread
preempted while holding a real lock would block every other one that wants it.
`queue.Queue`, `LifoQueue`, `PriorityQueue` and `SimpleQueue` become greensched's.

In the `_thread` module itself only the functions that *start* threads are
replaced (``start_new_thread``, its alias ``start_new``, and on 3.13
``start_joinable_thread`` and ``_ThreadHandle``), ``_local``, and ``RLock``: code that starts its threads
there (CPython's own socket tests do) gets green threads, with per-green-thread
locals, which can use the green `threading` primitives the rest of the program
shares with them. ``RLock`` is `threading.RLock`'s green class: the C one names its
owner by OS thread, so every green thread would own it at once (and the import
system does not use it). Its other locks and idents stay OS-level, on purpose. The
import system takes its module locks from ``_thread.allocate_lock`` and names owners
with ``_thread.get_ident``, in every OS
thread, including `to_thread`'s pool threads: green locks there would be waited on
from OS threads whose hub cannot be woken by the lock's. Real import locks keyed
by the OS thread stay correct because an import is never preempted (see
``_core/_preempt.py``). A green thread that blocks on a ``_thread.allocate_lock()``
lock blocks the OS thread until preemption switches it out, a tick at a time:
use `threading.Lock`, which is green.

By design, a green thread is not an OS thread: ``_thread._count()``,
``get_native_id()`` and ``threading.Thread.native_id`` still count and name OS
threads.

The two CPython versions of these internals live in their own modules: both start
their threads through `_thread_start` (``get_ident``, ``start_new_thread``); 3.11
and 3.12 mark a thread's end with a sentinel lock (`_thread_sentinels`:
``_set_sentinel``, ``_shutdown_locks_lock``); 3.13 reworked them into thread
handles (`_thread_handles`: ``_start_joinable_thread``, ``_ThreadHandle``,
``_make_thread_handle``, ``_thread_shutdown``, which interpreter exit calls).
`patch` installs the set that matches the running version.
"""

from __future__ import annotations

import _thread as _thread_module
import queue as _stdlib_queue
import sys
import threading as _stdlib_threading
from typing import Any

from .. import queue as _green_queue, sync as _green_sync
from .._core._errors import GreenThreadExit
from ..local import local as _green_local
from . import _thread_handles
from ._registry import patch_attr
from ._thread_handles import ThreadHandle, make_thread_handle, start_joinable_thread, thread_shutdown
from ._thread_sentinels import _set_sentinel
from ._thread_start import get_ident, start_new_thread

_HANDLES = sys.version_info >= (3, 13)  # thread handles instead of sentinel locks
__implements__ = ["_allocate_lock", "get_ident", "Lock", "_CRLock", "local", "_active_limbo_lock",
                  "Event", "_DummyThread", "excepthook"]
if _HANDLES:
    __implements__ += ["_thread_local_info", "_start_joinable_thread", "_ThreadHandle",
                       "_make_thread_handle", "_thread_shutdown"]
else:
    __implements__ += ["_start_new_thread", "_set_sentinel", "_shutdown_locks_lock"]
__implements_thread__ = ["start_new_thread", "start_new", "_local", "RLock"] + (
    ["start_joinable_thread", "_ThreadHandle"] if _HANDLES else [])
__implements_queue__ = ["Queue", "LifoQueue", "PriorityQueue", "SimpleQueue"]

_original_excepthook = _stdlib_threading.excepthook


def excepthook(args: Any, /) -> None:
    """`threading.excepthook`, except that a thread ended by `GreenThread.kill` (its
    run() raised `GreenThreadExit`) is not reported, as the stdlib's own hook does not
    report `SystemExit`. A program that installs its own hook sees kills too, as it
    sees `SystemExit`. (Replacing the hook, not the per-thread invoker threading makes
    in every ``Thread.__init__``, costs nothing per thread.)"""
    if args.exc_type is not None and issubclass(args.exc_type, GreenThreadExit):
        return
    _original_excepthook(args)


class _DummyRemover:
    """Takes a `threading._DummyThread` out of ``threading._active`` when dropped.

    ``threading.current_thread()`` in a green thread that is no ``threading.Thread``
    (one made by `greensched.spawn`: every log record asks) registers a
    ``_DummyThread`` under the green thread's ident. 3.11 and 3.12 never remove it;
    3.13 does through an OS-thread ``local``, shared by all green threads. One of
    these lives in a `greensched.local` instead: it goes when the green thread goes.
    """

    __slots__ = ("_ident", "_dummy")

    def __init__(self, dummy: Any) -> None:
        self._ident = dummy.ident
        self._dummy = dummy

    def __del__(self) -> None:
        # At interpreter exit, module globals may already be None when the last
        # green locals are dropped: then there is nothing left to tidy.
        active = getattr(_stdlib_threading, "_active", None)  # a plain dict: one pop needs no lock
        if active is not None and active.get(self._ident) is self._dummy:
            active.pop(self._ident, None)


_dummy_removers = _green_local()


class _DummyThread(_stdlib_threading._DummyThread):
    """`threading._DummyThread` that is forgotten when its green thread ends (its name is
    the original's: its repr is the one programs and CPython's tests look for)."""

    def __init__(self) -> None:
        super().__init__()
        _dummy_removers.remover = _DummyRemover(self)
        # 3.13+ (checked on 3.13.0): the stdlib's own remover sits in an OS-thread local
        # that every green thread shares, so each new dummy's remover would drop the
        # last one's (taking that green thread's dummy out of `_active`), and the last
        # one would run at interpreter teardown, when `_active_limbo_lock` is None
        # ("Exception ignored in _DeleteDummyThreadOnDel.__del__"). Ours does the job:
        # disarm the stdlib's and let it go now. 3.11 and 3.12 have none.
        info: Any = getattr(_stdlib_threading, "_thread_local_info", None)
        stdlib_remover = getattr(info, "_track_dummy_thread_ref", None)
        if stdlib_remover is not None and getattr(stdlib_remover, "_dummy_thread", None) is self:
            stdlib_remover._dummy_thread = None
            del info._track_dummy_thread_ref


def patch() -> None:
    """Install the green thread primitives into `threading` and `queue`."""
    in_threading = {
        "_allocate_lock": _green_sync.Lock,
        "get_ident": get_ident,
        "Lock": _green_sync.Lock,
        "_CRLock": _green_sync.RLock,
        "local": _green_local,
        "_active_limbo_lock": _green_sync.RLock(),
        # Not needed for correctness (threading's Event works on the green Lock), but
        # every Thread makes one for `_started`: ours is a flag and a wait queue, not
        # a Condition, an RLock and a deque (measured: spawn+join +40%, 1.2 KiB less
        # per parked thread). It has no private `_cond`.
        "Event": _green_sync.Event,
        # 3.11, 3.12
        "_start_new_thread": start_new_thread,
        "_set_sentinel": _set_sentinel,
        "_shutdown_locks_lock": _green_sync.Lock(),
        # 3.13+
        "_start_joinable_thread": start_joinable_thread,
        "_ThreadHandle": ThreadHandle,
        "_make_thread_handle": make_thread_handle,
        "_thread_shutdown": thread_shutdown,
    }
    in_threading["_DummyThread"] = _DummyThread
    in_threading["excepthook"] = excepthook
    if hasattr(_stdlib_threading, "_thread_local_info"):  # 3.13: where its own remover lives
        in_threading["_thread_local_info"] = _green_local()
    if _HANDLES:
        # 3.13+ only (as _HANDLES is); mypy checks against 3.11.
        _thread_handles.set_original_shutdown(_stdlib_threading._thread_shutdown)  # type: ignore[attr-defined]
    for name in __implements__:
        patch_attr(_stdlib_threading, name, in_threading[name])
    in_thread_module = {"start_new_thread": start_new_thread, "start_new": start_new_thread,
                        "start_joinable_thread": start_joinable_thread, "_ThreadHandle": ThreadHandle,
                        "_local": _green_local,
                        "RLock": _green_sync.RLock}
    for name in __implements_thread__:
        if hasattr(_thread_module, name):  # start_new, a deprecated alias, may go away
            patch_attr(_thread_module, name, in_thread_module[name])
    for name in __implements_queue__:
        patch_attr(_stdlib_queue, name, getattr(_green_queue, name))
