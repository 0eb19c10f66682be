"""The benchmark tools' own contract: a worker run with overridden sizes, clear errors for
bad arguments, every figure a workload declares in its result, verdicts against OS
threads paired by repetition, and instruction counts that grow with the work (when
valgrind is here).

The figures themselves are never asserted: speed is judged by `bench/run.py`, side by
side with the peers, not by tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

# `once`: CI runs these on its first interpreter only (.ci/run):
# the bench harness, not the runtime.
pytestmark = pytest.mark.once

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


def _figures_of(proc: subprocess.CompletedProcess[str]) -> dict[str, float]:
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH-RESULT "))
    figures: dict[str, float] = json.loads(line[len("BENCH-RESULT "):])
    return figures


def _bench_module(name: str) -> ModuleType:
    """A module of bench/ (``report``, ``workloads``...), imported as run.py imports it."""
    sys.path.insert(0, str(BENCH))
    try:
        import importlib

        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


# Issue 19's workloads at small sizes: each run reports every figure its workload declares
# (the lateness, the hog's rate, its cost beside the ticker, every message received).
@pytest.mark.parametrize(("workload", "params"), [
    ("hog_ticker", {"seconds": 0.5}),
    ("hog_cost", {"windows": 5, "window": 0.05}),
    ("blocking_sleep", {"seconds": 0.3}),
    ("c_calls", {"seconds": 0.2}),
    ("storm_sleepers", {"threads": 100, "seconds": 0.5}),
    ("storm_sockets", {"sockets": 10, "messages": 3, "seconds": 0.5}),
])
def test_a_wakeup_workload_reports_every_figure_it_declares(workload: str,
                                                            params: dict[str, Any]) -> None:
    proc = bench(str(BENCH / "worker.py"), "greensched", workload, "--params=" + json.dumps(params))
    figures = _figures_of(proc)
    declared = {m.key for m in _bench_module("workloads").get(workload).metrics}
    assert declared <= set(figures), (declared - set(figures), proc.stderr)
    if workload == "storm_sockets":
        assert figures["received"] == 10 * 3  # the workload itself fails if one is lost


def _hog_ticker_results(threads: dict[int, float] | None) -> Any:
    """Synthetic runs of hog_ticker: greensched's p99 by repetition, gevent's, threads'."""
    report = _bench_module("report")
    results = {
        ("hog_ticker", "greensched"): report.Cell(figures={1: {"p99_ms": 1.0}, 2: {"p99_ms": 100.0}}),
        ("hog_ticker", "gevent"): report.Cell(figures={1: {"p99_ms": 3000.0}, 2: {"p99_ms": 3000.0}}),
    }
    if threads is not None:
        results["hog_ticker", "threads"] = report.Cell(
            figures={rep: {"p99_ms": v} for rep, v in threads.items()},
            errors=["exit status 1: synthetic"] if len(threads) < 2 else [])
    return results


def test_a_target_against_os_threads_is_described_and_judged_as_a_ratio() -> None:
    target_cls = _bench_module("workloads").Target
    assert target_cls("vs_threads", "<=", 0.5).describe("ms") == "≤0.5× threads"
    assert target_cls("ratio", ">=", 3.0).describe("threads/s") == "≥3× gevent"
    assert target_cls("absolute", "<=", 1.5).describe("ms") == "≤1.5 ms"
    assert target_cls("vs_threads", "<=", 0.5).met(1.0, 5.0) is True
    assert target_cls("vs_threads", "<=", 0.5).met(3.0, 5.0) is False
    assert target_cls("vs_threads", "<=", 0.5).met(3.0, None) is None
    assert target_cls("absolute", "<=", 1.5).met(1.0, None) is True


def test_the_p99_vs_threads_row_pairs_greensched_with_threads_of_the_same_repetition() -> None:
    report = _bench_module("report")
    hog = _bench_module("workloads").get("hog_ticker")
    absolute, vs_threads = [m for m in hog.metrics if m.key == "p99_ms"]
    # threads' repetition 2 failed: only repetition 1 pairs (1.0 / 5.0 = 0.2×, met), where
    # dividing the medians (50.5 / 5.0) would say "not met".
    results = _hog_ticker_results({1: 5.0})
    assert report.ratio_base(vs_threads) == "threads"
    assert report.ratio_base(absolute) == "gevent"
    assert report.verdict(vs_threads, results, hog) == "**met**"
    assert report.verdict(absolute, results, hog) == "**not met**"  # median 50.5 ms > 1.5 ms
    results = _hog_ticker_results({1: 1.5, 2: 150.0})  # 0.67× and 0.67×
    assert report.verdict(vs_threads, results, hog) == "**not met**"
    assert report.verdict(vs_threads, _hog_ticker_results(None), hog) == "n/a (no threads figure)"


def test_a_starved_wakeup_of_about_one_second_reads_1000_ms_not_1e03() -> None:
    fmt_value = _bench_module("report").fmt_value
    assert [fmt_value(v, "ms") for v in (999.4, 999.6, 2997.3, 0.0491)] == \
        ["999", "1,000", "2,997", "0.0491"]
    assert fmt_value(999_600, "it/s") == "1M"


def test_the_table_shows_ratios_to_threads_only_on_the_vs_threads_row() -> None:
    report = _bench_module("report")
    hog = _bench_module("workloads").get("hog_ticker")
    lines = report.table([hog], ["greensched", "gevent", "threads"],
                         _hog_ticker_results({1: 5.0, 2: 10.0}))
    rows = {ln.split(" | ")[1]: ln.strip("| ").split(" | ") for ln in lines if " | " in ln}
    vs_threads = rows["ticker lateness p99 vs OS threads (ms)"]
    assert vs_threads[3:] == ["≤0.5× threads", "50.5 (5.10×)", "3,000 (450.00×)", "7.5 (1.00×)",
                              "**not met**"]  # 1/5 and 100/10: the median of 0.2× and 10×
    absolute = rows["ticker lateness p99 (ms)"]
    assert absolute[3:] == ["≤1.5 ms", "50.5 (0.017×)", "3,000 (1.00×)", "7.5 (0.0025×)",
                            "**not met**"]
    assert any("× threads" in ln for ln in report.legend(1, [hog]))
    assert not any("× threads" in ln for ln in report.legend(1, []))


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
