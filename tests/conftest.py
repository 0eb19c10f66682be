"""Shared fixtures: every test must leave the scheduler as it found it."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from greensched._core._hub import get_hub


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
