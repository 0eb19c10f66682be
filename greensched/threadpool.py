"""to_thread: run what cannot be made green on a small pool of real OS threads.

Some blocking work has no non-blocking form: DNS resolution through the C library
(``getaddrinfo``), some file I/O, and C extensions that hold the CPU without ever
checking for signals. ``to_thread(fn, *args, **kwargs)`` runs ``fn`` on a pool OS
thread and parks the calling green thread; the result (or exception) comes back
through the hub's wake-up pipe, and the other green threads run meanwhile.

The pool starts empty and grows on demand up to ``max_workers`` (default
``min(32, cpu_count + 4)``, as `concurrent.futures.ThreadPoolExecutor` does); its
threads are daemons that wait for work on a queue. It is built from the *original*
``_thread`` functions, saved when this module is imported, so it keeps working
after `patch_all()` has made ``_thread`` green.

A green thread killed (or hit by a `Timeout`) while it waits gets its exception at
once; the OS thread cannot be interrupted, so ``fn`` runs to its end and its
result is dropped.

A forked child has none of the pool's OS threads (only the forking thread is
copied), but it had the pool's counters, which said idle workers were waiting: its
first ``to_thread`` (a DNS lookup by name) then queued a job nobody would ever take,
and hung. The child starts a pool of its own instead. The pool's threads are also why
``os.fork()`` warns on 3.12+ that the process "is multi-threaded" once a
``to_thread`` call (or a DNS lookup) has run: the warning is about locks another
thread held at the fork; a worker holds one only for a few instructions around a job,
and the child never touches the parent's pool, its queue or its lock.
"""

from __future__ import annotations

import _queue
import _thread
import os
from collections.abc import Callable
from typing import Any, TypeVar

from ._core._hub import Hub, get_hub
from ._core._parking import ParkToken

__all__ = ["to_thread", "ThreadPool"]

T = TypeVar("T")

# The real OS-thread primitives, captured before anything can patch them.
_start_new_thread = _thread.start_new_thread
_allocate_lock = _thread.allocate_lock


class ThreadPool:
    """A lazily grown set of daemon OS threads running submitted jobs in FIFO order."""

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is None:
            max_workers = min(32, (os.cpu_count() or 1) + 4)
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        self.max_workers = max_workers
        self._jobs: Any = _queue.SimpleQueue()  # the C queue: a real, blocking OS-level wait
        self._lock = _allocate_lock()
        self._idle = 0  # workers waiting for a job nobody has claimed yet
        self._workers = 0

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job()`` on a pool thread soon. Safe from any OS thread."""
        start = False
        with self._lock:
            if self._idle:
                self._idle -= 1  # an idle worker will take this job
            elif self._workers < self.max_workers:
                self._workers += 1
                start = True
        self._jobs.put(job)
        if start:
            _start_new_thread(self._worker, ())

    def _worker(self) -> None:
        while True:
            job = self._jobs.get()
            job()
            with self._lock:
                self._idle += 1


_pool: ThreadPool | None = None
_pool_lock = _allocate_lock()


def _new_pool_in_child() -> None:
    """After a fork: the parent's pool threads are not here; start afresh (see the docstring)."""
    global _pool, _pool_lock
    _pool = None
    _pool_lock = _allocate_lock()


os.register_at_fork(after_in_child=_new_pool_in_child)


def _get_pool() -> ThreadPool:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPool()
    return _pool


class _Result:
    __slots__ = ("value", "error")

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None


def to_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` on a pool OS thread; park until it returns; return its value.

    Re-raises what ``fn`` raised. Use it for blocking calls that have no green
    version and for long C calls that never check for signals.
    """
    if not callable(fn):
        raise TypeError(f"to_thread() needs a callable, not {type(fn).__name__}")
    hub = get_hub()
    token = hub.prepare_park()
    result = _Result()

    def job() -> None:
        try:
            result.value = fn(*args, **kwargs)
        except BaseException as exc:  # handed back to the green thread that asked
            result.error = exc
        hub.call_soon_threadsafe(_finished, (hub, token))

    hub.hold()
    try:
        _get_pool().submit(job)
    except BaseException:
        hub.release()
        raise
    hub.park(token, f"to_thread({getattr(fn, '__qualname__', fn)!r})")
    if result.error is not None:
        raise result.error
    return result.value  # type: ignore[no-any-return]  # the worker's result is Any


def _finished(arg: tuple[Hub, ParkToken]) -> None:
    """In the hub: the job is done; wake the green thread if it is still waiting."""
    hub, token = arg
    hub.release()
    hub.unpark(token, True)
