"""greensched.celery:TaskPool in real ``celery worker`` processes, on a real redis-server.

Each worker is the venv's plain ``celery`` command, started the documented way::

    CELERY_CUSTOM_WORKER_POOL=greensched.celery:TaskPool \
        celery -A tests.integrations.celery_proj worker --pool=custom -c 200

with redis-server (the ``redis_server`` fixture) as broker and result backend. The
client is this (unpatched) test process. One worker (``-c 200``) serves most checks,
among them the issue's "Done when" figures: (a) 200 × 0.5 s sleeps, (b) soft and hard
time limits on CPU-bound and blocked tasks, (c) short I/O tasks beside a 5 s CPU-bound
task, (d) ping during it; others get workers of their own for (e) warm shutdown,
cold shutdown with acks_late redelivery, and the global limits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.util import REPO, run_python

# `once`: CI runs these on its first interpreter only (.ci/run):
# a real worker for a minute per version; the pool's core parts are tested on each.
pytestmark = pytest.mark.once

celery = pytest.importorskip("celery", reason="Celery is not installed: pip install -e '.[test]'")
pytest.importorskip("redis", reason="redis-py is not installed: pip install -e '.[test]'")

from celery.exceptions import TimeLimitExceeded  # noqa: E402

from tests.integrations import celery_proj as proj  # noqa: E402

CELERY = Path(sys.executable).with_name("celery")
POOL = "greensched.celery:TaskPool"
BOOT_TIMEOUT_S = 30.0


class Worker:
    """A ``celery worker`` child process with its log in a file."""

    def __init__(self, name: str, broker: str, tmp: Path, *args: str,
                 env: dict[str, str] | None = None, pool_args: tuple[str, ...] = ("--pool=custom",)) -> None:
        self.name = f"{name}@greensched-test"
        self.log = tmp / f"{name}.log"
        full_env = dict(os.environ)
        full_env.update({
            "CELERY_CUSTOM_WORKER_POOL": POOL,
            "GREENSCHED_CELERY_BROKER": broker,
            "PYTHONPATH": str(REPO) + os.pathsep + full_env.get("PYTHONPATH", ""),
            "PYTHONUNBUFFERED": "1",
        })
        full_env.pop("GREENSCHED_PREEMPT", None)
        full_env.update(env or {})
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [str(CELERY), "-A", "tests.integrations.celery_proj", "worker", *pool_args,
                 "-n", self.name, "-l", "INFO", "--without-gossip", "--without-mingle", *args],
                cwd=str(REPO), env=full_env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> Worker:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            if f"{self.name} ready." in self.output():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"worker {self.name} did not start; its log:\n{self.output()[-4000:]}")

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired as err:
            self.kill()
            raise AssertionError(
                f"worker {self.name} did not exit in {timeout} s; log:\n{self.output()[-4000:]}") from err

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def broker(redis_server: Any) -> Iterator[str]:
    """The broker URL; the client app (this process) is pointed at it."""
    url: str = redis_server.url
    proj.app.conf.update(broker_url=url, result_backend=url)
    yield url


@pytest.fixture(scope="module")
def worker(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """The shared worker: -c 200, the default queue."""
    w = Worker("main", broker, tmp_path_factory.mktemp("celery"), "-c", "200").wait_ready()
    yield w
    w.stop()


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _ping(name: str) -> float:
    """Seconds until ``name`` answers a ping (limit=1: return at its reply)."""
    start = time.monotonic()
    replies = proj.app.control.ping(destination=[name], timeout=10.0, limit=1)
    elapsed = time.monotonic() - start
    assert replies == [{name: {"ok": "pong"}}], replies
    return elapsed


# -- patching early enough -----------------------------------------------------------------


def test_the_pool_patches_before_the_app_is_imported(worker: Worker) -> None:
    """--pool=custom: Celery imports the pool first, so the app's own imports are green."""
    env = proj.environment.delay().get(timeout=10)
    assert env == {
        "socket_green_at_app_import": True,
        "sleep_green_at_app_import": True,
        "kombu_retry_sleep_green": True,  # imported by Celery before any pool: re-pointed
        "kombu_environment": "greensched",
    }
    assert "RuntimeWarning" not in worker.output()


def test_importing_the_pool_after_the_app_warns_with_the_fix() -> None:
    """-P greensched.celery:TaskPool loads the app first; the warning names the right command."""
    result = run_python(
        """
        import warnings
        warnings.simplefilter("always")
        import tests.integrations.celery_proj
        import celery.app.base
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import greensched.celery
        for w in caught:
            print(w.category.__name__, w.message)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "RuntimeWarning greensched.celery was imported after the Celery application" in result.stdout
    assert "CELERY_CUSTOM_WORKER_POOL=greensched.celery:TaskPool" in result.stdout
    assert "--pool=custom" in result.stdout


def test_import_greensched_does_not_import_celery() -> None:
    """The integration is loaded only by name; `import greensched` patches nothing."""
    result = run_python(
        "import sys, greensched; "
        "print(sorted(m for m in ('celery', 'kombu', 'greensched.celery') if m in sys.modules), "
        "greensched.is_patched('socket'))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] False"


# -- the "Done when" figures -----------------------------------------------------------------


def test_a_200_sleeping_tasks_run_at_once(worker: Worker) -> None:
    """(a) 200 × 0.5 s sleep tasks on -c 200 finish in < 3 s (serially: 100 s)."""
    start = time.monotonic()
    results = [proj.sleep_for.delay(0.5) for _ in range(200)]
    for r in results:
        r.get(timeout=30)
    elapsed = time.monotonic() - start
    print(f"(a) 200 x 0.5 s sleeps: {elapsed:.2f} s")
    assert elapsed < 3.0


def _started_at(marker_key: str) -> float:
    import redis

    values = redis.Redis.from_url(proj.app.conf.broker_url).lrange(marker_key, 0, -1)
    assert values, f"the task never recorded its start under {marker_key}"
    return float(values[0])


def test_b_soft_time_limit_reaches_a_cpu_bound_task(worker: Worker) -> None:
    """(b) soft_time_limit=1 raises SoftTimeLimitExceeded inside a computing task (< 1.5 s)."""
    outcome = proj.compute_soft_limited.delay(10).get(timeout=15)
    print(f"(b) soft limit 1 s reached a CPU-bound task after {outcome['soft_limit_after']:.3f} s")
    assert 0.95 <= outcome["soft_limit_after"] < 1.5


@pytest.mark.parametrize("task", ["compute_hard_limited", "block_hard_limited"])
def test_b_hard_time_limit_ends_the_task_and_the_worker_goes_on(worker: Worker, task: str) -> None:
    """(b) time_limit=2 ends a CPU-bound or a blocked task within 2.5 s, as TimeLimitExceeded.

    Measured in the worker, on its own clock: the task records when it began and when
    its ``finally`` ran (the kill), so broker and result latency are not counted.
    """
    import redis

    marker = f"{task}-{time.time()}"
    sent = time.time()
    result = getattr(proj, task).delay(10, marker)
    with pytest.raises(TimeLimitExceeded):
        result.get(timeout=15)
    client = redis.Redis.from_url(proj.app.conf.broker_url)
    _until(lambda: client.llen(marker) == 2, 5, "the task to record its span")
    began, ended = (float(v) for v in client.lrange(marker, 0, -1))
    ran = ended - began
    print(f"(b) {task}: time_limit=2 ended it {ran:.3f} s after it began (worker clock)")
    assert result.state == "FAILURE"
    assert 1.95 <= ran < 2.5  # not before its limit (less the accept before it began), nor late
    assert "Hard time limit (2" in worker.output()
    assert proj.now.delay().get(timeout=10) > sent  # the worker goes on


def test_soft_time_limit_reaches_a_blocked_task(worker: Worker) -> None:
    outcome = proj.block_soft_limited.delay(30).get(timeout=15)
    assert 0.95 <= outcome["soft_limit_after"] < 1.5


def test_c_d_io_tasks_and_ping_flow_beside_a_cpu_bound_task(worker: Worker) -> None:
    """(c) 20 short tasks sent 100 ms apart during a 5 s CPU task each finish < 1 s; (d) ping < 1 s."""
    hog = proj.compute.delay(5)
    _until(lambda: hog.state == "STARTED", 10, "the CPU-bound task to start")
    sends: list[float] = []
    results = []
    pings: list[float] = []
    for i in range(20):
        sends.append(time.time())
        results.append(proj.now.delay())
        if i % 5 == 2:
            pings.append(_ping(worker.name))
        else:
            time.sleep(0.1)
    latencies = [r.get(timeout=10) - sent for r, sent in zip(results, sends, strict=True)]
    assert hog.state == "STARTED", "the CPU-bound task ended before the check did: no overlap"
    print(f"(c) short tasks beside a CPU-bound one: worst {max(latencies):.3f} s; "
          f"(d) ping: worst {max(pings):.3f} s")
    assert max(latencies) < 1.0
    assert max(pings) < 1.0
    assert hog.get(timeout=15)["seconds"] >= 5.0


# -- the rest of the BasePool contract ---------------------------------------------------------


def test_inspect_stats_shows_the_pool_figures(worker: Worker) -> None:
    proj.now.delay().get(timeout=10)
    stats = proj.app.control.inspect(destination=[worker.name], timeout=5).stats()
    pool = stats[worker.name]["pool"]
    assert pool["implementation"] == POOL
    assert pool["max-concurrency"] == 200
    assert pool["running"] >= 0 and pool["done"] >= 1


def test_revoke_terminate_ends_the_task_green_thread(worker: Worker) -> None:
    result = proj.sleep_for.delay(60)
    _until(lambda: result.state == "STARTED", 10, "the task to start")
    before = proj.app.control.inspect(destination=[worker.name], timeout=5).stats()[worker.name]["pool"]
    result.revoke(terminate=True)
    _until(lambda: result.state == "REVOKED", 5, "the task to be revoked")

    def ended() -> bool:
        pool = proj.app.control.inspect(destination=[worker.name], timeout=5).stats()[worker.name]["pool"]
        return pool["terminated"] == before["terminated"] + 1 and pool["running"] == 0

    _until(ended, 5, "the pool to count the task as ended")
    assert proj.now.delay().get(timeout=10) > 0


def test_countdown_tasks_run_on_the_green_timer(worker: Worker) -> None:
    sent = time.time()
    ran_at = proj.now.apply_async(countdown=1).get(timeout=10)
    assert 1.0 <= ran_at - sent < 2.0


def test_pool_in_process_concurrency_cap_grow_shrink_and_timer() -> None:
    """The pool object itself (no broker): the cap holds, grow/shrink move it, the Timer fires."""
    result = run_python(
        """
        import time
        import greensched.celery as gc
        import greensched

        pool = gc.TaskPool(limit=2)
        pool.start()
        running, peak, results = [0], [0], []

        def job(x):
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            time.sleep(0.05)
            running[0] -= 1
            return x

        for i in range(6):
            pool.apply_async(job, args=(i,), callback=results.append)
        pool.grow(2)
        for i in range(6, 12):
            pool.apply_async(job, args=(i,), callback=results.append)
        pool.stop()
        print("peak", peak[0], "results", sorted(results), "info", pool.info["max-concurrency"])
        pool.shrink(3)
        print("after shrink", pool.num_processes)

        fired = []
        timer = gc.Timer()
        timer.call_after(0.05, fired.append, ("late",))
        gone = timer.call_after(0.05, fired.append, ("cancelled",))
        timer.cancel(gone)
        greensched.sleep(0.2)
        print("timer", fired, len(timer))
        """
    )
    assert result.returncode == 0, result.stderr
    assert "peak 4 results [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] info 4" in result.stdout
    assert "after shrink 1" in result.stdout
    assert "timer ['late'] 0" in result.stdout


def test_pool_in_process_without_putlocks_queues_beyond_the_limit() -> None:
    """worker_pool_putlocks=False: apply_async never waits, yet at most -c tasks run; the rest queue.

    Celery then gives the pool every task it prefetches; like the threads pool, ours
    keeps the extra ones and starts each when a slot is freed (or the pool grows).
    """
    result = run_python(
        """
        import time
        import greensched
        import greensched.celery as gc

        pool = gc.TaskPool(limit=2, putlocks=False)
        pool.start()
        gate = greensched.Event()
        running, peak, results = [0], [0], []

        def job(x):
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            gate.wait()
            time.sleep(0.01)
            running[0] -= 1
            return x

        for i in range(8):
            pool.apply_async(job, args=(i,), callback=results.append)
        for _ in range(5):
            greensched.sleep(0)  # the started ones run up to the gate
        print("before grow", running[0], pool.info["running"])
        pool.grow(1)
        for _ in range(5):
            greensched.sleep(0)
        print("after grow", running[0])
        gate.set()
        pool.stop()  # waits for the running and the queued ones
        print("peak", peak[0], "results", sorted(results))
        """
    )
    assert result.returncode == 0, result.stderr
    assert "before grow 2 2" in result.stdout, result.stdout
    assert "after grow 3" in result.stdout, result.stdout
    assert "peak 3 results [0, 1, 2, 3, 4, 5, 6, 7]" in result.stdout, result.stdout


def test_pool_in_process_start_stop_leaves_no_green_thread_behind() -> None:
    """A stopped (or terminated) pool leaves none of its green threads: watcher, keeper, tasks."""
    result = run_python(
        """
        import greensched
        import greensched.celery as gc
        from greensched._core._hub import get_hub

        hub = get_hub()
        before = set(hub._threads)
        for end in ("stop", "terminate"):
            for work in (False, True):
                pool = gc.TaskPool(limit=2)
                pool.start()
                if work:
                    pool.apply_async(greensched.sleep, args=(0.01,))
                greensched.sleep(0.05)
                getattr(pool, end)()
                left = [t.name for ident, t in list(hub._threads.items()) if ident not in before]
                print(end, "with a task" if work else "idle", "left", left)
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == ["stop idle left []", "stop with a task left []",
                     "terminate idle left []", "terminate with a task left []"], result.stdout


def test_pool_in_process_a_soft_limit_not_delivered_is_neither_counted_nor_reported() -> None:
    """throw() refuses while another exception is on its way: the soft limit comes again after it.

    The task has another exception pending (a ``Nudge``, thrown but not yet delivered)
    when its soft limit comes: it is not counted or reported then, and reaches the
    task soon after, once the task has dealt with the ``Nudge``.
    """
    result = run_python(
        """
        import time
        import greensched
        import greensched.celery as gc
        from celery.exceptions import SoftTimeLimitExceeded

        class Nudge(Exception):
            pass

        pool = gc.TaskPool(limit=1)
        pool.start()
        entered, seen, reported = greensched.Event(), [], []

        def task():
            entered.set()
            for _ in range(2):
                try:
                    time.sleep(3)
                except (Nudge, SoftTimeLimitExceeded) as exc:
                    seen.append(type(exc).__name__)
            return seen

        job = pool.apply_async(task, soft_timeout=60,
                               timeout_callback=lambda soft, limit: reported.append((soft, limit)))
        entered.wait()
        assert job.thread.throw(Nudge())  # on its way, not delivered: the task has not run since
        pool._limit_reached(job, "soft")  # its soft limit comes now (the keeper's call)
        print("at once", pool.soft_limits_hit, reported)
        pool.stop()
        print("then", seen, pool.soft_limits_hit, reported)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "at once 0 []" in result.stdout, result.stdout
    assert "then ['Nudge', 'SoftTimeLimitExceeded'] 1 [(True, 60)]" in result.stdout, result.stdout


def test_pool_in_process_a_task_that_will_not_die_does_not_hold_the_worker() -> None:
    """Past the hard limit: cleanup gets its grace; a task that swallows the kill is given up on.

    One task cleans up for 1.5 s after its kill (like psycopg cancelling a query, up
    to ``CANCEL_GRACE``): it is not ended again meanwhile, and nothing is logged. One
    swallows every kill: after the grace it is logged, and a warm stop waits for it
    only that long; the interpreter then exits (task threads are daemon threads).
    """
    result = run_python(
        """
        import logging
        import time
        import greensched
        import greensched.celery as gc
        from greensched import GreenThreadExit
        from greensched.monkey._psycopg import CANCEL_GRACE

        logging.basicConfig(format="%(levelname)s %(message)s")
        pool = gc.TaskPool(limit=4)
        pool.start()
        cleanup, kills = [], [0]

        def slow_cleanup():
            try:
                time.sleep(60)
            finally:
                try:
                    time.sleep(1.5)
                    cleanup.append("done")
                except GreenThreadExit:
                    cleanup.append("cut short")

        def stubborn():
            while True:
                try:
                    time.sleep(60)
                except GreenThreadExit:
                    kills[0] += 1

        start = time.monotonic()
        pool.apply_async(slow_cleanup, timeout=0.2)
        pool.apply_async(stubborn, timeout=0.2)
        pool.stop()
        assert gc._END_GRACE_S >= CANCEL_GRACE
        print("stopped after", round(time.monotonic() - start - 0.2, 1), "grace", gc._END_GRACE_S,
              "cleanup", cleanup, "hard", pool.hard_limits_hit, "killed again", kills[0] > 1, flush=True)
        """,
        timeout=40,
    )
    assert result.returncode == 0, result.stderr
    fields = result.stdout.split()
    stopped_after, grace = float(fields[2]), float(fields[4])
    assert "cleanup ['done'] hard 2 killed again True" in result.stdout, result.stdout
    assert grace <= stopped_after < grace + 5.0
    errors = [line for line in result.stderr.splitlines() if "hard time limit" in line]
    assert len(errors) == 1 and "stubborn" in errors[0], result.stderr
    assert f"has not ended {grace:.0f} s after its hard time limit" in errors[0], result.stderr
    assert "warm shutdown goes on without 1 ended task(s)" in result.stderr, result.stderr


# -- shutdown, redelivery, global limits: workers of their own -------------------------------------


def test_cold_shutdown_leaves_acks_late_tasks_to_be_redelivered_and_global_limits_and_warm_shutdown(
    broker: str, tmp_path: Path
) -> None:
    """Cold (Ctrl-C twice) ends a running acks_late task unacked; the next worker runs it again.

    That next worker has global limits (--soft-time-limit 1 --time-limit 2), and its
    warm shutdown (SIGTERM) lets its running tasks finish and exits 0: (e).
    """
    import redis

    marker = f"late-{time.time()}"
    cold = Worker("cold", broker, tmp_path, "-c", "10", "-Q", "redelivery").wait_ready()
    late = proj.late_ack_sleep.apply_async((60, marker), queue="redelivery")
    client = redis.Redis.from_url(broker)
    _until(lambda: client.llen(marker) == 1, 10, "the acks_late task to start")
    cold.process.send_signal(signal.SIGINT)  # warm: it would wait 60 s for the task...
    time.sleep(0.5)
    cold.process.send_signal(signal.SIGINT)  # ...cold: end it now, unacknowledged
    cold.wait_exit(20)
    assert late.state != "SUCCESS"

    warm = Worker("warm", broker, tmp_path, "-c", "200", "-Q", "redelivery,warm",
                  "--soft-time-limit", "1", "--time-limit", "2").wait_ready()
    try:
        assert late.get(timeout=20) == marker
        assert client.llen(marker) == 2  # it ran again, on the new worker

        # Global limits: the soft one reaches a computing task; the hard one ends another.
        soft = proj.compute.apply_async((10,), queue="warm").get(timeout=15)
        assert 0.95 <= soft["soft_limit_after"] < 1.5
        with pytest.raises(TimeLimitExceeded):
            proj.compute_hard_limited.apply_async((10,), queue="warm", soft_time_limit=30).get(timeout=15)

        # (e) SIGTERM with tasks running: they finish, the worker exits 0.
        running = [proj.sleep_for.apply_async((0.8,), queue="warm") for _ in range(20)]
        _until(lambda: all(r.state == "STARTED" for r in running), 10, "the tasks to start")
        warm.process.send_signal(signal.SIGTERM)
        assert warm.wait_exit(20) == 0
        assert all(r.state == "SUCCESS" for r in running), [r.state for r in running]
        print("(e) SIGTERM: 20 running tasks finished, exit 0")
    finally:
        warm.stop()


# -- RabbitMQ ----------------------------------------------------------------------------------------


def test_rabbitmq_broker_heartbeats_and_time_limits_while_a_task_computes(
    rabbitmq_server: Any, broker: str, tmp_path: Path
) -> None:
    """On RabbitMQ, with 2 s AMQP heartbeats: a 6 s CPU-bound task does not cost the connection.

    RabbitMQ closes a connection that misses its heartbeats (about two intervals);
    the worker's heartbeats go out on the pool's green timer, which preemption keeps
    running beside the computing task. Pings and short tasks flow meanwhile, and the
    soft limit reaches a computing task here too.
    """
    from celery import Celery

    amqp = Celery("amqp_client", broker=rabbitmq_server.url, backend=broker)
    amqp.conf.broker_heartbeat = 2.0
    w = Worker("amqp", rabbitmq_server.url, tmp_path, "-c", "50",
               env={"GREENSCHED_CELERY_BACKEND": broker, "GREENSCHED_CELERY_HEARTBEAT": "2"}).wait_ready()
    try:
        task = "tests.integrations.celery_proj."
        hog = amqp.send_task(task + "compute", args=(6,))
        _until(lambda: hog.state == "STARTED", 10, "the CPU-bound task to start")
        worst_ping, worst_task = 0.0, 0.0
        while hog.state == "STARTED":
            start = time.monotonic()
            assert amqp.control.ping(destination=[w.name], timeout=5.0, limit=1)
            worst_ping = max(worst_ping, time.monotonic() - start)
            sent = time.time()
            worst_task = max(worst_task, amqp.send_task(task + "now").get(timeout=10) - sent)
            time.sleep(0.3)
        assert hog.get(timeout=10)["seconds"] >= 6.0
        soft = amqp.send_task(task + "compute_soft_limited", args=(10,)).get(timeout=15)
        print(f"rabbitmq: worst ping {worst_ping:.3f} s, worst short task {worst_task:.3f} s "
              f"beside a 6 s CPU task; soft limit after {soft['soft_limit_after']:.3f} s")
        assert worst_ping < 1.0 and worst_task < 1.0
        assert 0.95 <= soft["soft_limit_after"] < 1.5
        log = w.output()
        assert "missed heartbeats" not in log and "Connection to broker lost" not in log, log[-3000:]
        w.process.send_signal(signal.SIGTERM)
        assert w.wait_exit(20) == 0
    finally:
        w.stop()


# -- autoscale -------------------------------------------------------------------------------------


def test_autoscale_grows_the_pool_from_celerys_autoscaler_thread(broker: str, tmp_path: Path) -> None:
    """--autoscale: Celery's Autoscaler thread grows the pool while the consumer waits for a slot.

    The Autoscaler is a ``threading.Thread`` (Celery's ``bgThread``, whose class was
    made before the pool patched anything), but ``start()`` goes through the patched
    ``_thread`` functions, so it runs as a green thread in the worker's one hub:
    its ``grow()`` wakes the consumer waiting in ``on_apply`` from the same OS thread.
    With 2 slots and 8 tasks, the consumer waits for a slot; Celery grows the pool by
    one each second (it counts reserved requests, which the waiting consumer stops
    taking), and the tasks finish sooner than in 2 slots.
    """
    w = Worker("autoscale", broker, tmp_path, "--autoscale=8,2", "-Q", "autoscale").wait_ready()
    try:
        threads = proj.threads.apply_async(queue="autoscale").get(timeout=10)
        assert "Autoscaler" in threads["names"] and threads["os_threads"] == 1, threads
        start = time.monotonic()
        results = [proj.sleep_for.apply_async((2.0,), queue="autoscale") for _ in range(8)]
        for r in results:
            r.get(timeout=30)
        elapsed = time.monotonic() - start
        stats = proj.app.control.inspect(destination=[w.name], timeout=5).stats()[w.name]["pool"]
        print(f"autoscale 2 -> {stats['max-concurrency']}: 8 x 2 s tasks in {elapsed:.2f} s")
        log = w.output()
        assert "Scaling up" in log and "crashed" not in log and "HubError" not in log, log[-4000:]
        assert stats["max-concurrency"] > 2
        assert elapsed < 7.5  # in 2 slots: 4 rounds of 2 s
        w.process.send_signal(signal.SIGTERM)
        assert w.wait_exit(20) == 0
    finally:
        w.stop()
