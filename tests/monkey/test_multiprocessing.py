"""multiprocessing under patch_all(): pools, queues, pipes and managers, with real children.

Each case runs tests/monkey/mp_program.py in a fresh interpreter (it patches at its
top, so spawn and forkserver children patch too when they import it) under each
start method. Before the patch, ``Pool.map`` hung (its result handler blocked the
OS thread in a pipe read) and `Queue.get` / managers failed with BlockingIOError.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.util import REPO, run_python

PROGRAM = Path(__file__).with_name("mp_program.py")


def run_program(method: str, scenario: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("GREENSCHED_PREEMPT", None)
    env.pop("GREENSCHED_SLICE_MS", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, str(PROGRAM), method, scenario], env=env, cwd=str(REPO),
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("scenario", ["pool", "queue", "manager", "executor"])
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_works_green(method: str, scenario: str) -> None:
    proc = run_program(method, scenario)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), (proc.stdout, proc.stderr[-3000:])


def test_the_patch_can_be_left_out_and_is_reported() -> None:
    proc = run_python(
        """
        import greensched
        greensched.patch_all(multiprocessing=False)
        import multiprocessing.connection as c
        print(greensched.is_patched("multiprocessing.connection"),
              c.Connection._recv.__module__)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "multiprocessing.connection"]
    proc = run_python(
        """
        import greensched
        greensched.patch_all()
        import multiprocessing.connection as c
        print(greensched.is_patched("multiprocessing.connection.Connection", "_recv"),
              greensched.original("multiprocessing.connection.Connection", "_recv").__module__)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "multiprocessing.connection"]
