"""Reading the bytecode: which callee a call site calls, and how a landing is classified."""

from __future__ import annotations

import dis
import os
import sys
import time
from types import FrameType
from typing import Any

import pytest

from greensched._core import _safepoints
from greensched._core._safepoints import CLEAN, SAFE_CALL, UNKNOWN, UNSAFE, callee_name


def sample(x: Any, fh: Any, lock: Any, kw: Any) -> None:  # never called: its bytecode is read
    print(x)
    fh.write(x)
    time.sleep(0)
    sys.stdout.flush()
    print(len(x), file=fh)
    lock.acquire()
    time.monotonic()
    fh.write(x if x else "y")
    fh.writelines(map(str, x))
    os.read(x, 1)


CALL_OPS = {"CALL", "CALL_KW"}


def test_callee_names_of_every_call_in_order() -> None:
    """Each outer call's callee is found; a call with a jump in its arguments is unknown."""
    names = [callee_name(sample.__code__, i.offset)
             for i in dis.get_instructions(sample) if i.opname in CALL_OPS]
    assert names == ["print", "write", "sleep", "flush", "len", "print", "acquire", "monotonic",
                     None, "map", "writelines", "read"]
    qualified = [callee_name(sample.__code__, i.offset, qualified=True)
                 for i in dis.get_instructions(sample) if i.opname in CALL_OPS]
    assert qualified[2:4] == ["time.sleep", "flush"] and qualified[-1] == "os.read", qualified


def test_classify_calls_by_callee() -> None:
    """A landing on a call is safe or unsafe by what it calls."""
    verdicts = {
        callee_name(sample.__code__, i.offset): _safepoints._classify_call(sample.__code__, i.offset)
        for i in dis.get_instructions(sample) if i.opname in CALL_OPS
    }
    assert verdicts["print"] == verdicts["write"] == verdicts["flush"] == UNSAFE
    assert verdicts["sleep"] == verdicts["acquire"] == verdicts["monotonic"] == SAFE_CALL
    assert verdicts["read"] == SAFE_CALL  # os.read: a bare system call, unlike fh.read
    assert verdicts[None] == UNKNOWN


def test_a_real_landing_in_a_c_call_is_classified_by_its_callee() -> None:
    """A frame stopped inside time.sleep (seen from a signal handler) is a safe call."""
    import signal

    seen: list[str] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        assert frame is not None
        seen.append(_safepoints.classify(frame))

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        import os
        import threading

        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        time.sleep(0.3)
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert seen == [SAFE_CALL]


def test_classify_back_edges_and_function_entry_as_clean() -> None:
    """RESUME and the backward jumps are clean landings, found by name in this version."""
    names = {dis.opname[op] for op in _safepoints._CLEAN_OPS}
    assert "RESUME" in names and "JUMP_BACKWARD" in names


@pytest.mark.parametrize("name", ["print", "write", "flush", "readline", "input", "close"])
def test_file_like_names_are_unsafe(name: str) -> None:
    assert name in _safepoints._UNSAFE_NAMES


def test_an_unparseable_call_is_unknown() -> None:
    call = next(i for i in dis.get_instructions(sample) if i.opname in CALL_OPS
                and callee_name(sample.__code__, i.offset) is None)
    assert _safepoints._classify_call(sample.__code__, call.offset) == UNKNOWN
    assert CLEAN != UNKNOWN
