"""Starting a green thread the way `_thread` starts an OS thread (every version).

`get_ident` tells green threads apart, and `start_new_thread` is
``_thread.start_new_thread`` made green. Both are shared by the two ways
`threading` starts its threads: ``_start_new_thread`` plus a sentinel lock on 3.11
and 3.12 (`_thread_sentinels`), ``_start_joinable_thread`` plus a thread handle on
3.13 and later (`_thread_handles`). What a started thread runs is a `_Body`.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

from .._core._errors import GreenThreadExit
from .._core._greenthread import GreenThread
from .._core._hub import get_hub
from .._core._preempt import mark_root
from ._thread_sentinels import release_sentinels

__all__ = ["get_ident", "start_new_thread", "start_thread"]

#: How `_thread` reports an exception that escapes a thread to ``sys.unraisablehook``:
#: 3.11 and 3.12 pass the function as the hook's ``object``; 3.13 names it in the
#: message and passes None (checked on 3.11.7, 3.12.1 and 3.13.0's test_thread).
_FUNCTION_IN_MESSAGE = sys.version_info >= (3, 13)


def get_ident() -> int:
    """The current green thread's ident; the main green thread has its OS thread's."""
    hub = get_hub()
    current = hub.current
    if current is None or current is hub.main:
        return hub.os_thread_id
    return current.ident


def start_new_thread(function: Callable[..., Any], args: tuple[Any, ...],
                     kwargs: dict[str, Any] | None = None) -> int:
    """`_thread.start_new_thread`, green (as `threading` calls it): returns the new ident."""
    if not callable(function):
        raise TypeError("first arg must be callable")
    if not isinstance(args, tuple):
        raise TypeError("2nd arg must be a tuple")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError("optional 3rd arg must be a dictionary")
    # The sentinels are 3.11's and 3.12's; on 3.13 none is ever made, and the call is a no-op.
    return start_thread(function, args, kwargs or {}, release_sentinels).ident


def start_thread(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 finish: Callable[[], None]) -> GreenThread:
    """Start a daemon green thread running ``function(*args, **kwargs)``, then ``finish()``."""
    thread = GreenThread(target=_Body(function, args, kwargs, finish).run, daemon=True)
    thread.start()
    return thread


class _Body:
    """What a thread started through `_thread` runs: ``function(*args, **kwargs)``.

    Its bound `run` is the green thread's target, so that `GreenThread.run` reaches
    it with a plain call (no ``*``): on 3.11 and 3.12 a call with ``*`` takes a
    C-level frame of the interpreter, and every parked thread keeps each such frame
    in its saved stack (416 bytes, measured). `threading.Thread.run` makes one such
    call itself. (Not a subclass of GreenThread overriding ``run``: the hub's
    attribute reads would then see two types of thread, which defeats CPython's
    specialisation of them, measured at +12% for a queue ping-pong.)
    """

    __slots__ = ("function", "args", "kwargs", "finish")

    def __init__(self, function: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], finish: Callable[[], None]) -> None:
        self.function = function
        self.args = args
        self.kwargs = kwargs
        self.finish = finish

    def run(self) -> None:
        """As `_thread` does: report what escapes (not a kill or sys.exit); then finish."""
        function, args, kwargs = self.function, self.args, self.kwargs
        try:
            if args or kwargs:
                function(*args, **kwargs)
            else:
                function()  # threading's `Thread._bootstrap`: no C frame (see above)
        except (SystemExit, GreenThreadExit):
            pass  # a thread ended with sys.exit() or killed is not reported
        except BaseException as exc:  # _thread reports through sys.unraisablehook
            if _FUNCTION_IN_MESSAGE:
                message, culprit = f"Exception ignored in thread started by {function!r}", None
            else:
                message, culprit = "Exception ignored in thread started by", function
            sys.unraisablehook(types.SimpleNamespace(
                exc_type=type(exc), exc_value=exc, exc_traceback=exc.__traceback__,
                err_msg=message, object=culprit))
        finally:
            self.finish()


# User code runs under _Body.run: without this mark the preemptor would take the whole
# stack for greensched's own (atomic) code and never preempt a threading.Thread.
mark_root(_Body.run)
