"""Celery worker pools side by side: greensched.celery:TaskPool, gevent, threads, prefork.

    .venv/bin/python bench/celery_pools.py [--pools greensched,gevent,threads,prefork]
                                           [--json FILE] [--markdown FILE]

One redis-server (started here, as the tests do: tests/servers/real.py) is broker and
result backend; each pool gets a fresh ``celery worker`` process of the venv's plain
``celery`` command, running tests/integrations/celery_proj.py, and this process is the
client. For each pool, in this order:

* **throughput**: 2,000 tasks that each sleep 0.5 s (``time.sleep``: I/O wait) at
  ``-c 500``: tasks/s from the first send to the last result. prefork runs at its
  usual concurrency (one process per core) with 40 tasks instead (2,000 would take
  ~8 min), which is the point of the row.
* **the issue's five figures** at ``-c 200`` (prefork: one per core): (a) 200 × 0.5 s
  sleeps, seconds; (b) a CPU-bound task with ``soft_time_limit=1``: when
  ``SoftTimeLimitExceeded`` reached it (or "none" within 4 s), and a 10 s CPU-bound
  task with ``time_limit=2``: when it was ended (or "not ended": it ran its 10 s);
  (c) the worst latency (send to finish) of 20 short tasks sent 100 ms apart while a
  5 s CPU-bound task runs; (d) the worst ``ping`` round trip during that task (or
  "no answer" within 3 s); (e) SIGTERM with 20 tasks running: did they finish, and
  the exit status.

Ratios are greensched's figure ÷ the peer's, from this one run. The machine's load
moves the absolute figures; see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(REPO_DIR))

CELERY = Path(sys.executable).with_name("celery")
POOLS = {
    "greensched": ["--pool=custom"],
    "gevent": ["-P", "gevent"],
    "threads": ["-P", "threads"],
    "prefork": ["-P", "prefork"],
}
THROUGHPUT_TASKS = 2000
THROUGHPUT_CONCURRENCY = 500
CHECK_CONCURRENCY = 200
PREFORK_CONCURRENCY = os.cpu_count() or 2
PREFORK_THROUGHPUT_TASKS = 40


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Worker:
    """One ``celery worker`` child; its output goes to a file."""

    def __init__(self, pool: str, concurrency: int, broker: str, tmp: Path) -> None:
        self.name = f"bench-{pool}-{concurrency}@greensched"
        self.log = tmp / f"{pool}-{concurrency}.log"
        env = dict(os.environ)
        env.update({
            "CELERY_CUSTOM_WORKER_POOL": "greensched.celery:TaskPool",
            "GREENSCHED_CELERY_BROKER": broker,
            "PYTHONPATH": str(REPO_DIR) + os.pathsep + env.get("PYTHONPATH", ""),
        })
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [str(CELERY), "-A", "tests.integrations.celery_proj", "worker", *POOLS[pool],
                 "-c", str(concurrency), "-n", self.name, "-l", "WARNING",
                 "--without-gossip", "--without-mingle", "--prefetch-multiplier", "4"],
                cwd=str(REPO_DIR), env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def wait_ready(self, proj: Any) -> Worker:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                if proj.app.control.ping(destination=[self.name], timeout=0.5, limit=1):
                    return self
            except Exception:
                pass
        raise RuntimeError(f"{self.name} did not answer a ping in 60 s: {self.log.read_text()[-3000:]}")

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def _ping_s(proj: Any, name: str, timeout: float = 3.0) -> float | None:
    start = time.monotonic()
    replies = proj.app.control.ping(destination=[name], timeout=timeout, limit=1)
    return time.monotonic() - start if replies else None


def _until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def throughput(proj: Any, pool: str, broker: str, tmp: Path) -> dict[str, Any]:
    concurrency = PREFORK_CONCURRENCY if pool == "prefork" else THROUGHPUT_CONCURRENCY
    tasks = PREFORK_THROUGHPUT_TASKS if pool == "prefork" else THROUGHPUT_TASKS
    worker = Worker(pool, concurrency, broker, tmp).wait_ready(proj)
    try:
        start = time.monotonic()
        results = [proj.sleep_for.delay(0.5) for _ in range(tasks)]
        for r in results:
            r.get(timeout=600)
        elapsed = time.monotonic() - start
    finally:
        worker.stop()
    return {"tasks": tasks, "concurrency": concurrency, "seconds": elapsed, "tasks_per_s": tasks / elapsed}


def checks(proj: Any, pool: str, broker: str, tmp: Path) -> dict[str, Any]:
    from celery.exceptions import TimeLimitExceeded

    concurrency = PREFORK_CONCURRENCY if pool == "prefork" else CHECK_CONCURRENCY
    worker = Worker(pool, concurrency, broker, tmp).wait_ready(proj)
    out: dict[str, Any] = {"concurrency": concurrency}
    try:
        # (a)
        start = time.monotonic()
        for r in [proj.sleep_for.delay(0.5) for _ in range(200)]:
            r.get(timeout=600)
        out["a_200_sleeps_s"] = time.monotonic() - start
        # (b) soft: the task computes 4 s unless SoftTimeLimitExceeded reaches it.
        outcome = proj.compute_soft_limited.delay(4).get(timeout=30)
        out["b_soft_after_s"] = outcome.get("soft_limit_after")
        # (b) hard: a 10 s CPU-bound task with time_limit=2.
        start = time.monotonic()
        result = proj.compute_hard_limited.delay(10)
        try:
            result.get(timeout=30)
            out["b_hard_ended_s"] = None  # it ran to its end: never ended
        except TimeLimitExceeded:
            out["b_hard_ended_s"] = time.monotonic() - start
        # (c), (d): short tasks and pings beside a 5 s CPU-bound task.
        hog = proj.compute.delay(5)
        _until(lambda: hog.state == "STARTED", 10)
        time.sleep(0.2)
        sends, results, pings = [], [], []
        for i in range(20):
            sends.append(time.time())
            results.append(proj.now.delay())
            if i in (3, 12):
                pings.append(_ping_s(proj, worker.name))
            else:
                time.sleep(0.1)
        latencies = [r.get(timeout=60) - s for r, s in zip(results, sends, strict=True)]
        out["c_io_worst_s"] = max(latencies)
        out["d_ping_worst_s"] = None if None in pings else max(pings)  # type: ignore[type-var]
        hog.get(timeout=60)
        _until(lambda: _ping_s(proj, worker.name, 1.0) is not None, 30)
        # (e) SIGTERM with 20 tasks running.
        running = [proj.sleep_for.delay(1.0) for _ in range(min(20, concurrency))]
        _until(lambda: all(r.state == "STARTED" for r in running), 10)
        worker.process.send_signal(signal.SIGTERM)
        try:
            code = worker.process.wait(30)
        except subprocess.TimeoutExpired:
            code = None
        out["e_finished"] = sum(r.state == "SUCCESS" for r in running)
        out["e_running"] = len(running)
        out["e_exit"] = code
    finally:
        worker.stop()
    return out


def _fmt(value: Any, unit: str = " s", none: str = "—") -> str:
    if value is None:
        return none
    if isinstance(value, float):
        return f"{value:.2f}{unit}" if value >= 0.1 else f"{value * 1000:.0f} ms"
    return str(value)


def _ratio(ours: Any, theirs: Any) -> str:
    if not isinstance(ours, (int, float)) or not isinstance(theirs, (int, float)) or not theirs:
        return ""
    return f" ({ours / theirs:.2f}×)"


def render(results: dict[str, dict[str, Any]]) -> str:
    pools = list(results)
    ours = results.get("greensched", {})
    head = "| | " + " | ".join(pools) + " |\n|---|" + "---|" * len(pools) + "\n"
    rows = []

    def row(label: str, key: str, section: str, fmt: Callable[[Any], str], ratio: bool = False) -> None:
        cells = []
        for pool in pools:
            value = results[pool].get(section, {}).get(key)
            cell = fmt(value)
            if ratio and pool != "greensched":
                cell += _ratio(ours.get(section, {}).get(key), value)
            cells.append(cell)
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    row("tasks/s, 0.5 s I/O tasks (greensched ÷ peer)", "tasks_per_s", "throughput",
        lambda v: "—" if v is None else f"{v:.0f}", ratio=True)
    rows.append("| (tasks @ concurrency) | " + " | ".join(
        f"{results[p].get('throughput', {}).get('tasks', '—')} @ "
        f"{results[p].get('throughput', {}).get('concurrency', '—')}"
        for p in pools) + " |")
    row("(a) 200 × 0.5 s sleeps", "a_200_sleeps_s", "checks", _fmt)
    row("(b) soft_time_limit=1 reached a CPU task after", "b_soft_after_s", "checks",
        lambda v: _fmt(v, none="none within 4 s"))
    row("(b) time_limit=2 ended a 10 s CPU task after", "b_hard_ended_s", "checks",
        lambda v: _fmt(v, none="not ended (ran 10 s)"))
    row("(c) worst latency, 20 short tasks beside a 5 s CPU task", "c_io_worst_s", "checks", _fmt)
    row("(d) worst ping during that task", "d_ping_worst_s", "checks",
        lambda v: _fmt(v, none="no answer in 3 s"))
    rows.append("| (e) SIGTERM with tasks running: finished, exit | " + " | ".join(
        f"{results[p].get('checks', {}).get('e_finished', '—')}/"
        f"{results[p].get('checks', {}).get('e_running', '—')}, "
        f"exit {results[p].get('checks', {}).get('e_exit', '—')}" for p in pools) + " |")
    return head + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Celery pools side by side on a real redis broker.")
    parser.add_argument("--pools", default=",".join(POOLS), help=f"comma-separated, of {','.join(POOLS)}")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    pools = [p.strip() for p in args.pools.split(",") if p.strip()]
    unknown = [p for p in pools if p not in POOLS]
    if unknown:
        parser.error(f"unknown pool(s) {unknown}; known: {', '.join(POOLS)}")
    if "gevent" in pools:
        try:
            import gevent  # noqa: F401
        except ImportError:
            log("gevent is not installed (.venv/bin/pip install gevent): its column is left out")
            pools.remove("gevent")

    from tests.servers.real import start_redis

    tmp = Path(tempfile.mkdtemp(prefix="greensched-bench-celery-"))
    tmp.chmod(0o755)
    redis = start_redis(tmp / "redis")
    try:
        os.environ["GREENSCHED_CELERY_BROKER"] = redis.url
        from tests.integrations import celery_proj as proj

        proj.app.conf.update(broker_url=redis.url, result_backend=redis.url)
        results: dict[str, dict[str, Any]] = {p: {} for p in pools}
        for pool in pools:
            log(f"{pool}: throughput ...")
            results[pool]["throughput"] = throughput(proj, pool, redis.url, tmp)
            log(f"{pool}: {results[pool]['throughput']}")
            log(f"{pool}: the five checks ...")
            results[pool]["checks"] = checks(proj, pool, redis.url, tmp)
            log(f"{pool}: {results[pool]['checks']}")
    finally:
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    table = render(results)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        args.json.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                         "python": sys.version.split()[0], "cpus": os.cpu_count(),
                                         "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
