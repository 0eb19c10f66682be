"""The park protocol (_core/_parking.py) and debug mode's checks (_core/_debug.py).

A park token names one park of one thread: stale ones wake nothing; in debug mode (on
for the whole suite, see tests/conftest.py) a token used for a park it was not made
for, and a state change off the state graph, raise where they happen.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from greensched import GreenThread, HubError, spawn
from greensched._core import _debug
from greensched._core._errors import StateTransitionError
from greensched._core._greenthread import DONE, LEGAL_TRANSITIONS, NEW, PARKED, READY, RUNNING
from greensched._core._hub import get_hub
from greensched._core._parking import TIMED_OUT, ParkToken
from greensched.scheduler import sleep


def wait_until_parked(thread: GreenThread) -> None:
    """Let other threads run until ``thread`` parks (yields only: no clock involved)."""
    while thread.state != PARKED:
        sleep(0)


def test_the_suite_runs_in_debug_mode() -> None:
    assert _debug.DEBUG, "tests/conftest.py sets GREENSCHED_DEBUG=1 before greensched is imported"
    assert isinstance(GreenThread.__dict__["_state"], property)


def test_a_token_of_an_earlier_park_wakes_nothing() -> None:
    hub = get_hub()
    tokens: list[ParkToken] = []
    results: list[object] = []

    def waiter() -> None:
        first = hub.prepare_park()
        tokens.append(first)
        results.append(hub.park(first, "first park", 0.001))  # times out
        second = hub.prepare_park()
        tokens.append(second)
        results.append(hub.park(second, "second park"))

    thread = spawn(waiter)
    wait_until_parked(thread)
    while len(tokens) < 2:  # it may still be in its first park
        sleep(0)
    wait_until_parked(thread)
    assert hub.unpark(tokens[0], "stale") is False
    assert thread.state == PARKED  # the stale token left the second park alone
    assert hub.unpark(tokens[1], "fresh") is True
    assert hub.unpark(tokens[1], "twice") is False  # that park is over now
    thread.join()
    assert results == [TIMED_OUT, "fresh"]


def test_a_park_that_returns_at_once_uses_up_its_token() -> None:
    hub = get_hub()
    token = hub.prepare_park()
    assert hub.park(token, "no wait", 0) is TIMED_OUT
    assert hub.unpark(token) is False
    with pytest.raises(HubError, match="prepare_park"):
        hub.park(token, "the same token again", 0.001)
    assert hub.prepare_park() != token  # every park gets a new one


def test_a_token_parks_only_the_thread_it_was_made_by() -> None:
    hub = get_hub()
    mine = hub.prepare_park()
    errors: list[BaseException] = []

    def other() -> None:
        try:
            hub.park(mine, "someone else's park", 0.001)
        except HubError as exc:
            errors.append(exc)

    spawn(other).join()
    assert len(errors) == 1 and "was used by" in str(errors[0])


def test_a_thrown_exception_ends_the_park_and_its_token() -> None:
    hub = get_hub()
    tokens: list[ParkToken] = []
    caught: list[BaseException] = []

    def waiter() -> None:
        token = hub.prepare_park()
        tokens.append(token)
        try:
            hub.park(token, "until thrown into")
        except LookupError as exc:
            caught.append(exc)

    thread = spawn(waiter)
    wait_until_parked(thread)
    assert thread.throw(LookupError("stop"))
    assert hub.unpark(tokens[0]) is False  # READY now, with the exception on its way
    thread.join()
    assert [str(e) for e in caught] == ["stop"]


# -- the one state transition ---------------------------------------------------------------


def test_a_state_change_off_the_graph_raises_naming_thread_and_states() -> None:
    thread = GreenThread(lambda: None, name="worker")
    with pytest.raises(StateTransitionError, match=r"'worker' .* from NEW to RUNNING") as info:
        thread._state = RUNNING
    assert "from NEW: DONE, READY" in str(info.value)
    assert thread.state == NEW  # nothing changed
    thread.start()
    thread.join()
    with pytest.raises(StateTransitionError, match="from DONE to READY"):
        thread._state = READY


def test_every_state_the_hub_moves_a_thread_through_is_on_the_graph() -> None:
    """A run that parks, yields, is woken, times out and finishes: no check fires."""
    hub = get_hub()
    seen: list[str] = []

    def work() -> None:
        sleep(0)
        token = hub.prepare_park()
        assert hub.park(token, "a short wait", 0.001) is TIMED_OUT
        seen.append("done")

    threads = [spawn(work) for _ in range(3)]
    for thread in threads:
        thread.join()
    assert seen == ["done"] * 3
    assert all(thread.state == DONE for thread in threads)
    assert set(LEGAL_TRANSITIONS) == {NEW, READY, RUNNING, PARKED, DONE}


def _state_descriptor_in_child(env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    code = ("import greensched\n"
            "print(type(greensched.GreenThread.__dict__['_state']).__name__)")
    child_env = {k: v for k, v in os.environ.items() if k not in ("GREENSCHED_DEBUG", "PYTHONDEVMODE")}
    child_env.update(env)
    return subprocess.run([sys.executable, *flags, "-c", code], env=child_env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("env", "flags", "expected"), [
    ({}, (), "member_descriptor"),                                # off by default: no checks
    ({"GREENSCHED_DEBUG": "0"}, (), "member_descriptor"),
    ({"GREENSCHED_DEBUG": "1"}, (), "property"),
    ({}, ("-X", "dev"), "property"),                              # on under python -X dev
    ({"GREENSCHED_DEBUG": "0"}, ("-X", "dev"), "member_descriptor"),  # unless turned off
])
def test_debug_mode_is_read_from_the_environment(
    env: dict[str, str], flags: tuple[str, ...], expected: str
) -> None:
    done = _state_descriptor_in_child(env, *flags)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


def test_a_bad_debug_setting_fails_the_import_and_says_what_to_set() -> None:
    done = _state_descriptor_in_child({"GREENSCHED_DEBUG": "yes"})
    assert done.returncode != 0
    assert "GREENSCHED_DEBUG='yes' is not understood: set it to 1" in done.stderr
