"""The public exceptions: importable from greensched, named greensched.X, said once."""

from __future__ import annotations

import pickle
import queue

import pytest

import greensched
from tests.util import run_python

PUBLIC_EXCEPTIONS = [getattr(greensched, name) for name in greensched.__all__
                     if isinstance(getattr(greensched, name), type)
                     and issubclass(getattr(greensched, name), BaseException)]


def test_every_exception_greensched_defines_is_shown_as_greensched_x() -> None:
    ours = [exc for exc in PUBLIC_EXCEPTIONS if exc not in (queue.Empty, queue.Full)]
    assert {exc.__name__ for exc in ours} >= {
        "DeadlockError", "FdBusyError", "GreenThreadExit", "HubError", "StateTransitionError",
        "TimeoutExpired"}
    for exc in ours:
        assert exc.__module__ == "greensched", exc
        assert repr(exc) == f"<class 'greensched.{exc.__name__}'>"


@pytest.mark.parametrize("exc_type", [e for e in PUBLIC_EXCEPTIONS if e.__module__ == "greensched"])
def test_public_exceptions_pickle_by_their_public_name(exc_type: type[BaseException]) -> None:
    if exc_type is greensched.TimeoutExpired:
        exc: BaseException = greensched.TimeoutExpired(greensched.Timeout(2.5))
    else:
        exc = exc_type("what happened")
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is exc_type and again.args == exc.args and str(again) == str(exc)


def test_a_second_reader_of_a_busy_fd_is_an_fd_busy_error_and_still_a_runtime_error() -> None:
    assert issubclass(greensched.FdBusyError, greensched.HubError)
    assert issubclass(greensched.FdBusyError, RuntimeError)  # what it was before it had a name


DEADLOCK_IN_MAIN = """
import greensched
lock = greensched.Lock()
lock.acquire()
greensched.spawn(lock.acquire)    # a non-daemon thread that can never finish
greensched.Event().wait()         # main waits for nothing: DeadlockError
"""

DEADLOCK_ONLY_AT_EXIT = """
import greensched
lock = greensched.Lock()
lock.acquire()
greensched.spawn(lock.acquire)    # a non-daemon thread that can never finish
print("main ends")
"""


def test_a_deadlock_report_is_printed_once_although_exit_waits_for_the_same_threads() -> None:
    proc = run_python(DEADLOCK_IN_MAIN)
    assert proc.returncode == 1
    assert "greensched.DeadlockError: every green thread is parked" in proc.stderr
    assert proc.stderr.count("every green thread is parked") == 1, proc.stderr
    assert "Exception ignored in atexit" not in proc.stderr


def test_threads_that_can_never_finish_at_exit_are_reported_once_and_not_waited_for() -> None:
    proc = run_python(DEADLOCK_ONLY_AT_EXIT)
    assert proc.stdout == "main ends\n"
    assert proc.stderr.count("every green thread is parked") == 1, proc.stderr
    assert proc.stderr.startswith("greensched: the program ended, but its non-daemon green threads "
                                  "can never finish, so they were not waited for:")
