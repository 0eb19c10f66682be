"""The runtime's exception types, in one place so every layer can name them."""

from __future__ import annotations

__all__ = ["GreenThreadExit", "DeadlockError", "HubError", "FdBusyError", "StateTransitionError"]


class GreenThreadExit(BaseException):
    """Raised inside a green thread by `GreenThread.kill` to end it.

    A `BaseException`, like `SystemExit` and `GeneratorExit`, so that ``except
    Exception:`` blocks do not swallow it; ``finally`` blocks and ``with`` exits run.
    A thread that ends with it is not reported as a failure.
    """


class DeadlockError(RuntimeError):
    """Every green thread is parked and nothing (timer, I/O, OS thread) can wake one.

    Raised in the main green thread instead of hanging forever. The message names
    each parked thread, what it waits on, and where in its code it is parked.
    """


class HubError(RuntimeError):
    """A runtime operation was used where it cannot work (e.g. blocking inside the hub)."""


class FdBusyError(HubError):
    """A second green thread tried to wait to read (or to write) an fd another already waits on.

    Two readers of one socket or pipe would race for the same bytes, and two writers
    interleave theirs; greensched refuses the second wait rather than wake only one.
    A `RuntimeError`, as it was before it had a name of its own.
    """


class StateTransitionError(RuntimeError):
    """Debug mode (`_debug`) caught a green thread moved along no edge of its state graph.

    Never raised with debug mode off; always a bug in greensched or in code that sets
    its private fields.
    """
