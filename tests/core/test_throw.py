"""GreenThread.throw(exc): any exception, raised where the thread waits or was preempted."""

from __future__ import annotations

import pytest

import greensched
from greensched import Event, GreenThread, GreenThreadExit, spawn


class Nudge(Exception):
    pass


def test_throw_into_a_parked_thread_raises_from_its_wait() -> None:
    entered = Event()

    def sleeper() -> str:
        entered.set()
        try:
            greensched.sleep(60)
        except Nudge as exc:
            return f"caught {exc}"
        return "slept"

    thread = spawn(sleeper)
    entered.wait()
    assert thread.throw(Nudge("here")) is True
    assert thread.result(5) == "caught here"


def test_throw_reaches_a_cpu_bound_thread_that_never_parks() -> None:
    """The thread is preempted while it computes; it gets the exception when it resumes."""
    entered = Event()

    def spin() -> int:
        entered.set()
        n = 0
        try:
            while True:
                n += 1
        except Nudge:
            return n

    thread = spawn(spin)
    entered.wait()
    greensched.sleep(0.05)  # the spinner runs meanwhile: preemption brings us back
    assert thread.throw(Nudge()) is True
    assert thread.result(5) > 0


def test_throw_returns_false_for_unstarted_and_finished_threads() -> None:
    assert GreenThread(target=lambda: None).throw(Nudge()) is False
    done = spawn(lambda: 1)
    done.join()
    assert done.throw(Nudge()) is False


def test_a_pending_kill_is_not_replaced_by_a_throw() -> None:
    entered = Event()
    seen: list[str] = []

    def sleeper() -> None:
        entered.set()
        try:
            greensched.sleep(60)
        except GreenThreadExit:
            seen.append("killed")
            raise

    thread = spawn(sleeper)
    entered.wait()
    thread.kill(block=False)
    assert thread.throw(Nudge()) is False
    thread.join(5)
    assert seen == ["killed"]


class Other(Exception):
    pass


def test_a_kill_replaces_a_pending_throw() -> None:
    """Thrown, not yet delivered (READY): a kill takes its place; the thread sees only the kill."""
    entered = Event()
    seen: list[str] = []

    def sleeper() -> None:
        entered.set()
        try:
            greensched.sleep(60)
        except GreenThreadExit:
            seen.append("killed")
            raise
        except Nudge:
            seen.append("nudged")

    thread = spawn(sleeper)
    entered.wait()
    assert thread.throw(Nudge()) is True
    assert thread.state == "READY"  # on its way, not delivered: the thread has not run since
    thread.kill(block=False)
    thread.join(5)
    assert thread.done()
    assert seen == ["killed"]


def test_throw_returns_false_when_another_exception_is_pending() -> None:
    """A second throw into a READY thread with one already on its way is refused; the first arrives."""
    entered = Event()
    seen: list[str] = []

    def sleeper() -> None:
        entered.set()
        try:
            greensched.sleep(60)
        except (Nudge, Other) as exc:
            seen.append(type(exc).__name__)

    thread = spawn(sleeper)
    entered.wait()
    assert thread.throw(Nudge()) is True
    assert thread.state == "READY"
    assert thread.throw(Other()) is False
    thread.join(5)
    assert seen == ["Nudge"]


def test_throw_into_self_raises_at_once_and_non_exceptions_are_refused() -> None:
    with pytest.raises(Nudge):
        greensched.current_thread().throw(Nudge())
    with pytest.raises(TypeError, match="exception instance"):
        greensched.current_thread().throw(Nudge)  # type: ignore[arg-type]
