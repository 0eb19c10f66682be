"""The injectable clock: MockClock semantics and every green wait reading the hub clock."""

from __future__ import annotations

import time

import pytest

import greensched
from greensched import Condition, Event, Queue, Timeout, TimeoutExpired
from greensched._core._clock import REAL_CLOCK
from greensched.testing import MockClock


def test_jump_fires_due_sleepers_in_deadline_order(mock_clock: MockClock) -> None:
    woke: list[tuple[str, float]] = []
    started = Event()

    def sleeper(name: str, seconds: float) -> None:
        greensched.sleep(seconds)
        woke.append((name, mock_clock.now()))

    threads = [greensched.spawn(sleeper, name, s) for name, s in [("c", 30), ("a", 10), ("b", 20)]]
    greensched.spawn(started.set)
    started.wait()  # all three are parked on their sleeps by now
    mock_clock.jump(15)
    greensched.sleep(0)
    greensched.sleep(0)
    assert woke == [("a", 15.0)]
    mock_clock.jump(100)
    for t in threads:
        t.join()
    assert [name for name, _ in woke] == ["a", "b", "c"]


def test_time_does_not_move_without_a_jump(mock_clock: MockClock) -> None:
    # A sleep that would end at once on a real clock only ends with a jump.
    thread = greensched.spawn(greensched.sleep, 0.001)
    real_deadline = time.monotonic() + 0.05
    while time.monotonic() < real_deadline:
        greensched.sleep(0)
    assert thread.is_alive()
    mock_clock.jump(0.001)
    thread.join()
    assert not thread.is_alive()


def test_autojump_runs_an_hour_of_sleeps_at_once(autojump: MockClock) -> None:
    order: list[int] = []

    def worker(n: int) -> None:
        greensched.sleep(3600 - n)
        order.append(n)

    began = time.monotonic()
    threads = [greensched.spawn(worker, n) for n in range(3)]
    for t in threads:
        t.join()
    assert order == [2, 1, 0]
    assert autojump.now() == 100.0 + 3600
    assert time.monotonic() - began < 30  # an hour of mock time; any real slowness is fine


def test_timeout_fires_on_mock_time(autojump: MockClock) -> None:
    with pytest.raises(TimeoutExpired):
        with Timeout(60):
            Event().wait()
    assert autojump.now() == 160.0


def test_condition_wait_and_queue_get_time_out_on_mock_time(autojump: MockClock) -> None:
    cond = Condition()
    with cond:
        assert cond.wait(timeout=5) is False
    assert autojump.now() == 105.0
    with pytest.raises(greensched.Empty):
        Queue().get(timeout=7)
    assert autojump.now() == 112.0
    assert Event().wait(timeout=8) is False
    assert autojump.now() == 120.0


def test_jump_wakes_a_timed_wait_before_a_later_set(mock_clock: MockClock) -> None:
    ev = Event()
    result: list[bool] = []
    waiter = greensched.spawn(lambda: result.append(ev.wait(timeout=10)))
    greensched.sleep(0)
    mock_clock.jump(10)
    waiter.join()
    ev.set()
    assert result == [False]


def test_swapping_with_pending_timers_raises(mock_clock: MockClock) -> None:
    sleeper = greensched.spawn(greensched.sleep, 5)
    greensched.sleep(0)  # it is parked on its timer now
    with pytest.raises(RuntimeError, match="timer"):
        greensched.set_clock(None)
    assert greensched.get_clock() is mock_clock
    mock_clock.jump(5)
    sleeper.join()
    greensched.set_clock(None)
    assert greensched.get_clock() is REAL_CLOCK
    greensched.set_clock(mock_clock)  # the fixture resets it


def test_set_clock_rejects_what_is_not_a_clock() -> None:
    with pytest.raises(TypeError, match="Clock"):
        greensched.set_clock(time.monotonic)  # type: ignore[arg-type]


def test_bad_mock_clock_arguments() -> None:
    with pytest.raises(ValueError):
        MockClock().jump(-1)
    with pytest.raises(ValueError):
        MockClock(autojump_threshold=float("nan"))


def test_user_time_monotonic_stays_real(autojump: MockClock) -> None:
    before = time.monotonic()
    greensched.sleep(1000)
    assert autojump.now() == 1100.0
    assert time.monotonic() - before < 1000
