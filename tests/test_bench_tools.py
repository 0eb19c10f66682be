"""The benchmark tools' own contract: a worker run with overridden sizes, clear errors for
bad arguments, and instruction counts that grow with the work (when valgrind is here).

The figures themselves are never asserted: speed is judged by `bench/run.py`, side by
side with the peers, not by tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          cwd=str(BENCH.parent), timeout=timeout)


def test_worker_runs_a_workload_at_the_sizes_given() -> None:
    proc = bench(str(BENCH / "worker.py"), "greensched", "spawn_join",
                 '--params={"total": 300, "batch": 100, "warmup": 100}')
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH-RESULT "))
    figures = json.loads(line[len("BENCH-RESULT "):])
    assert figures["rate"] > 0  # the workload itself checks that all 300 threads ran


@pytest.mark.parametrize(("params", "message"), [
    ("--params=nope", "--params is not JSON"),
    ("--params=[1]", "--params takes a JSON object"),
    ('--params={"threds": 1}', "sleep0 has no parameter threds; it has threads, per_thread, warmup"),
])
def test_worker_refuses_bad_params_with_a_clear_message(params: str, message: str) -> None:
    proc = bench(str(BENCH / "worker.py"), "greensched", "sleep0", params)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_instructions_refuses_an_unknown_workload_or_runtime() -> None:
    proc = bench(str(BENCH / "instructions.py"), "--only", "nope")
    assert proc.returncode == 2
    assert "unknown workload 'nope'; known: sleep0, spawn_join, queue_pingpong, tcp_echo" in proc.stderr
    proc = bench(str(BENCH / "instructions.py"), "--runtimes", "threads")
    assert proc.returncode == 2
    assert "unknown runtime 'threads'" in proc.stderr


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instruction_counts_grow_with_the_work() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import instructions
    finally:
        sys.path.remove(str(BENCH))
    small = instructions.count("greensched", "sleep0", {"threads": 10, "per_thread": 10, "warmup": 1})
    large = instructions.count("greensched", "sleep0", {"threads": 10, "per_thread": 210, "warmup": 1})
    per_yield = (large - small) / (10 * 200)
    # A yield is thousands of instructions (two greenlet switches and the hub's loop),
    # and far less than a whole interpreter start-up (tens of millions).
    assert 1_000 < per_yield < 1_000_000, per_yield
