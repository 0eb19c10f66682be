"""The schedule fuzzer: the primitives under many seeded, forced preemption schedules.

Each run forces a preemption request every 1-12 lines of non-greensched code (the
normal 10 ms slice is ~100,000 lines), through the real handler, so switches land
at every kind of safe point and retries run inside greensched's code. After each
run the workload's invariants and the common ones (workloads.run_one) are checked.

A failure names its seed. Replay it:

    GREENSCHED_FUZZ_SEED=1234 .venv/bin/python -m pytest tests/fuzz -k locks

``GREENSCHED_FUZZ_SEEDS=N`` runs N seeds per workload (default 40 over greensched's
primitives, 280 runs, and 20 over patched threading, 140 runs: ~18 s on a loaded
2-core machine); the slow tests run 1,000 per workload over greensched's primitives and 300 over
patched threading (``--runslow`` or ``-m slow``; about 10 minutes), beginning where the
default run's seeds end, so that they never repeat a schedule it already tried.
``test_the_fuzzer_finds_a_race_and_replays_it`` shows that it catches what it is for.
"""

from __future__ import annotations

import os
import sys

import pytest

import greensched
from tests.fuzz.schedule import forced_schedule
from tests.fuzz.workloads import WORKLOADS, green_primitives, run_one
from tests.util import run_python

DEFAULT_SEEDS = 40
PATCHED_SEEDS = 20  # each in a fresh interpreter's patched stdlib: slower per run
SLOW_SEEDS = 1000
SLOW_PATCHED_SEEDS = 300


def _seeds(default: int, first: int = 0) -> list[int]:
    """``default`` seeds from ``first`` on (or GREENSCHED_FUZZ_SEEDS of them), or the one to replay."""
    one = os.environ.get("GREENSCHED_FUZZ_SEED", "").strip()
    if one:
        return [int(one)]
    count = int(os.environ.get("GREENSCHED_FUZZ_SEEDS", "").strip() or default)
    return list(range(first, first + count))


def _fuzz(name: str, seeds: list[int]) -> None:
    if sys.gettrace() is not None:
        pytest.skip("a tracer (coverage, a debugger) owns sys.settrace; the fuzzer needs it")
    p = green_primitives()
    requests = 0
    for seed in seeds:
        try:
            requests += run_one(name, seed, p)
        except BaseException as exc:
            raise AssertionError(
                f"schedule fuzzer: workload {name!r} failed with seed {seed}: {exc!r}\n"
                f"replay: GREENSCHED_FUZZ_SEED={seed} python -m pytest tests/fuzz -k {name}"
            ) from exc
    assert requests > 20 * len(seeds), f"only {requests} forced requests in {len(seeds)} runs"


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_green_primitives_under_random_schedules(name: str) -> None:
    _fuzz(name, _seeds(DEFAULT_SEEDS))


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_green_primitives_under_many_random_schedules(name: str) -> None:
    _fuzz(name, _seeds(SLOW_SEEDS, first=DEFAULT_SEEDS))


def _fuzz_patched(seeds: list[int], timeout: float) -> None:
    if sys.gettrace() is not None:
        pytest.skip("a tracer (coverage, a debugger) owns sys.settrace; the fuzzer needs it")
    first, count = seeds[0], len(seeds)
    proc = run_python(f"import runpy, sys; sys.argv = ['patched_program', '{first}', '{count}']; "
                      f"runpy.run_module('tests.fuzz.patched_program', run_name='__main__')",
                      timeout=timeout)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), (
        f"schedule fuzzer over patched threading: {proc.stdout.strip()}\n{proc.stderr[-4000:]}\n"
        f"replay: GREENSCHED_FUZZ_SEED=<seed> python -m pytest tests/fuzz -k patched"
    )


def test_patched_threading_under_random_schedules() -> None:
    """The same workloads over threading, queue and socket after patch_all()."""
    _fuzz_patched(_seeds(PATCHED_SEEDS), timeout=110)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_patched_threading_under_many_random_schedules() -> None:
    _fuzz_patched(_seeds(SLOW_PATCHED_SEEDS, first=PATCHED_SEEDS), timeout=1400)


def _racy_counter(seed: int) -> int:
    """Four threads bump a counter with a call between the read and the write, unlocked."""
    box = [0]

    def pause() -> None:
        pass

    def bump() -> None:
        for _ in range(30):
            value = box[0]
            pause()  # a check: a forced switch may land between the read and the write
            box[0] = value + 1

    with forced_schedule(seed):
        threads = [greensched.spawn(bump) for _ in range(4)]
        for t in threads:
            t.join()
    return box[0]


def test_the_fuzzer_finds_a_race_and_replays_it() -> None:
    """A lost update shows up under forced schedules, and the same seed loses the same count."""
    if sys.gettrace() is not None:
        pytest.skip("a tracer (coverage, a debugger) owns sys.settrace; the fuzzer needs it")
    results = {seed: _racy_counter(seed) for seed in range(5)}
    assert any(total < 120 for total in results.values()), results
    for seed, total in results.items():
        assert _racy_counter(seed) == total, f"seed {seed} did not replay"
