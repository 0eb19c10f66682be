"""greensched: preemptive green threads for plain blocking Python.

Thousands of threads on one OS thread, written as ordinary blocking code, with a
timer that keeps one busy or stuck thread from freezing the others.
"""

from ._core._errors import DeadlockError, FdBusyError, GreenThreadExit, HubError, StateTransitionError
from ._core._greenthread import GreenThread
from .local import local
from .monitor import (
    dump_stacks,
    format_stacks,
    set_dump_signal,
    start_blocking_detector,
    stats,
    stop_blocking_detector,
)
from .monkey import is_patched, original, patch_all
from .queue import Empty, Full, LifoQueue, PriorityQueue, Queue, SimpleQueue
from .scheduler import (
    current_thread,
    get_clock,
    get_preemption,
    no_preempt,
    notify_fd_closed,
    run,
    set_clock,
    set_preemption,
    sleep,
    spawn,
    wait_fds,
    wait_readable,
    wait_writable,
)
from .sync import BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore
from .threadpool import to_thread
from .timeout import Timeout, TimeoutExpired

__version__ = "0.1.0.dev0"

# The public exceptions are greensched's wherever they are defined: tracebacks show
# greensched.DeadlockError, and pickle finds them by that name.
for _exception in (DeadlockError, FdBusyError, GreenThreadExit, HubError, StateTransitionError,
                   TimeoutExpired):
    _exception.__module__ = __name__
del _exception

__all__ = [
    "BoundedSemaphore", "Condition", "DeadlockError", "Empty", "Event", "FdBusyError", "Full",
    "GreenThread", "GreenThreadExit", "HubError", "LifoQueue", "Lock", "PriorityQueue",
    "Queue", "RLock", "Semaphore", "SimpleQueue", "StateTransitionError", "Timeout", "TimeoutExpired",
    "current_thread", "dump_stacks", "format_stacks", "get_preemption", "is_patched", "local",
    "no_preempt", "notify_fd_closed", "original", "patch_all", "run", "set_dump_signal",
    "set_clock", "get_clock", "set_preemption", "sleep", "spawn", "start_blocking_detector", "stats",
    "stop_blocking_detector",
    "to_thread", "wait_fds", "wait_readable", "wait_writable",
]
