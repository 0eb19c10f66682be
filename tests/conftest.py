"""Shared fixtures: every test must leave the scheduler as it found it."""

from __future__ import annotations

import os
from collections.abc import Iterator

# The suite runs in debug mode (greensched/_core/_debug.py): every state change and park
# token is checked. Set before greensched is imported, as the checks are installed at
# import; child processes the tests start inherit it. GREENSCHED_DEBUG=0 in the
# environment runs the suite without the checks.
os.environ.setdefault("GREENSCHED_DEBUG", "1")

import pytest  # noqa: E402  # after the environment is set

import greensched  # noqa: E402
from greensched._core._hub import get_hub  # noqa: E402
from greensched.testing import MockClock  # noqa: E402


@pytest.fixture(autouse=True)
def no_leftover_green_threads() -> Iterator[None]:
    """Fail a test that leaves green threads running, after killing them."""
    hub = get_hub()
    before = set(hub._threads)
    yield
    leftover = [t for ident, t in list(hub._threads.items()) if ident not in before]
    for thread in leftover:
        thread.kill(timeout=5)
    assert not leftover, f"test left green threads behind: {leftover}"


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """A pipe (read fd, write fd), both closed afterwards unless the test closed them."""
    r, w = os.pipe()
    try:
        yield r, w
    finally:
        for fd in (r, w):
            try:
                os.close(fd)
            except OSError:
                pass


# -- slow tests: skipped unless asked for -----------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runslow", action="store_true", default=False,
        help="also run the tests marked slow (or set GREENSCHED_SLOW=1, or select them with -m slow)",
    )


def _slow_wanted(config: pytest.Config) -> bool:
    if config.getoption("--runslow") or os.environ.get("GREENSCHED_SLOW", "") not in ("", "0"):
        return True
    markexpr = config.getoption("-m", default="") or ""
    return "slow" in markexpr and "not slow" not in markexpr


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _slow_wanted(config):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow, GREENSCHED_SLOW=1 or -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def preemption_on() -> Iterator[None]:
    """Default preemption settings (on, 10 ms) for the test, restored afterwards."""
    before = greensched.get_preemption()
    greensched.set_preemption(True, 10.0)
    yield
    greensched.set_preemption(*before)


@pytest.fixture
def mock_clock() -> Iterator[MockClock]:
    """The hub on a `MockClock` (autojump off) for the test; real time again after."""
    clock = MockClock()
    greensched.set_clock(clock)
    try:
        yield clock
    finally:
        greensched.set_clock(None)


@pytest.fixture
def autojump() -> Iterator[MockClock]:
    """The hub on a `MockClock` that jumps to the next timer as soon as all are parked.

    A test that pins the order of timers, timeouts and sleeps runs on it in no real
    time and cannot race the wall clock. Its clock starts at 100 s.
    """
    clock = MockClock(start=100.0, autojump_threshold=0)
    greensched.set_clock(clock)
    try:
        yield clock
    finally:
        greensched.set_clock(None)
