"""The runtime's exception types, in one place so every layer can name them."""

from __future__ import annotations

__all__ = ["GreenThreadExit", "DeadlockError", "HubError"]


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
