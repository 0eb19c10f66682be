"""Settings that cannot hang the process: the slice floor, and errors at import.

The floor (``MIN_SLICE_MS``, 0.5 ms) and the measurement behind it are in
greensched/_core/_settings.py and docs/reliability.md.
"""

from __future__ import annotations

import pytest

import greensched
from greensched._core._settings import MIN_SLICE_MS
from tests.util import run_python


@pytest.mark.parametrize("slice_ms", [0.01, 0.1, 0.49])
def test_set_preemption_refuses_a_slice_below_the_floor(slice_ms: float) -> None:
    before = greensched.get_preemption()
    with pytest.raises(ValueError, match=r"below the 0\.5 ms floor.*live-locks.*slice_ms=0\.5 or more"):
        greensched.set_preemption(slice_ms=slice_ms)
    assert greensched.get_preemption() == before  # nothing changed


def test_the_floor_itself_is_accepted() -> None:
    before = greensched.get_preemption()
    try:
        greensched.set_preemption(True, MIN_SLICE_MS)
        assert greensched.get_preemption() == (True, MIN_SLICE_MS)
    finally:
        greensched.set_preemption(*before)


@pytest.mark.parametrize("value", ["0.01", "0.1", "abc", "-3", "0", "nan", "inf"])
def test_a_bad_slice_in_the_environment_fails_at_import(value: str) -> None:
    """The error comes from ``import greensched`` itself, before any thread exists."""
    proc = run_python("import greensched\nprint('imported')", env={"GREENSCHED_SLICE_MS": value})
    assert proc.returncode != 0 and "imported" not in proc.stdout
    assert "ValueError: GREENSCHED_SLICE_MS=" in proc.stderr, proc.stderr
    # Raised by line 1, the import, from the preemption module's import: not at a first spawn.
    assert 'File "<string>", line 1, in <module>' in proc.stderr and "_preempt.py" in proc.stderr


def test_a_bad_preempt_switch_fails_at_import() -> None:
    proc = run_python("import greensched\nprint('imported')", env={"GREENSCHED_PREEMPT": "maybe"})
    assert proc.returncode != 0 and "imported" not in proc.stdout
    assert "GREENSCHED_PREEMPT='maybe' is not understood" in proc.stderr


def test_the_command_line_refuses_a_slice_below_the_floor() -> None:
    proc = run_python("from greensched.__main__ import main; main(['--slice', '0.05', '-m', 'this'])")
    assert proc.returncode != 0
    assert "below the 0.5 ms floor" in proc.stderr, proc.stderr


def test_at_the_floor_nothing_live_locks() -> None:
    """What live-locked at 0.01-0.02 ms finishes at the floor: an unpatched sleep, a
    queue ping-pong beside a CPU hog, and two hogs sharing the CPU."""
    code = """
        import time
        import greensched
        from greensched import Queue, spawn
        spawn(time.sleep, 0.2).join()
        stop = [False]
        def hog():
            while not stop[0]:
                pass
        h = spawn(hog)
        q1, q2 = Queue(), Queue()
        def echo():
            for _ in range(2000):
                q2.put(q1.get())
        e = spawn(echo)
        for i in range(2000):
            q1.put(i)
            assert q2.get() == i
        stop[0] = True
        h.join(); e.join()
        def work():
            n = 0
            for i in range(500_000):
                n += i
        a, b = spawn(work), spawn(work)
        a.join(); b.join()
        print("ok", greensched.stats()["preemptions"] > 0)
    """
    proc = run_python(code, env={"GREENSCHED_SLICE_MS": str(MIN_SLICE_MS)}, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["ok", "True"]
