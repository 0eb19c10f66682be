"""PostgreSQL round trips: 50 threads, one connection each, ``SELECT 1`` in a loop.

Three workloads, one per driver: ``pg_psycopg2``, ``pg_psycopg`` (psycopg 3) and
``pg_pg8000``. Each of ``threads`` threads opens its own connection, then runs
``queries`` round trips of ``SELECT 1`` (execute + fetchone); the figure is round
trips per second over all threads, from the first query to the last. The runner
starts a PostgreSQL server for them (tests/servers/real.py: ``initdb`` + ``postgres``
in a temp dir, trust auth on 127.0.0.1) and passes its URL in ``BENCH_PG_URL``.

How each runtime makes the C drivers wait green: greensched by ``patch_all()``
alone (its psycopg2 wait callback, its psycopg 3 wait functions); gevent with
psycogreen for psycopg2 (``psycogreen.gevent.patch_psycopg()``) and psycopg 3's
own detection of gevent's patching; eventlet with ``psycogreen.eventlet`` for
psycopg2, while psycopg 3 does not detect eventlet and waits in C (each query
then holds the hub for its round trip); OS threads need nothing. pg8000 is pure
Python over patched sockets everywhere.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from time import perf_counter
from typing import Any
from urllib.parse import urlsplit

from ._spec import Context, Figures, Metric, Target, Workload

#: The environment variable the runner sets to the server's URL.
URL_VARIABLE = "BENCH_PG_URL"


def _url() -> str:
    url = os.environ.get(URL_VARIABLE)
    if not url:
        raise RuntimeError(f"{URL_VARIABLE} is not set: run this workload through bench/run.py, "
                           f"which starts a PostgreSQL server for it")
    return url


def _green_psycopg2(runtime: str) -> None:
    """What a gevent or eventlet user adds for psycopg2 (greensched needs nothing)."""
    if runtime in ("gevent", "eventlet"):
        try:
            module = __import__(f"psycogreen.{runtime}", fromlist=["patch_psycopg"])
        except ImportError:
            raise RuntimeError(f"psycogreen is needed for psycopg2 under {runtime}: "
                               f".venv/bin/pip install psycogreen") from None
        module.patch_psycopg()


def _connector(driver: str, runtime: str) -> Callable[[], Any]:
    """A function opening one DB-API connection with ``driver``."""
    url = _url()
    if driver == "psycopg2":
        _green_psycopg2(runtime)
        import psycopg2

        return lambda: psycopg2.connect(url)
    if driver == "psycopg":
        import psycopg

        return lambda: psycopg.connect(url, autocommit=True)
    if driver == "pg8000":
        import pg8000.dbapi

        parts = urlsplit(url)
        # No TLS: pg8000 would build a TLS context per connection (CPU, not waiting).
        return lambda: pg8000.dbapi.connect(user=parts.username or "postgres", host=parts.hostname,
                                            port=parts.port or 5432, database=parts.path.lstrip("/"),
                                            ssl_context=False)
    raise ValueError(f"unknown driver {driver!r}")


def _round_trips(connect: Callable[[], Any], threads: int, queries: int) -> float:
    """``threads`` threads x ``queries`` SELECT 1 each; returns the elapsed seconds."""
    connections = [connect() for _ in range(threads)]
    ready = threading.Barrier(threads + 1)
    errors: list[str] = []

    def client(conn: Any) -> None:
        cur = conn.cursor()
        ready.wait()
        try:
            for _ in range(queries):
                cur.execute("SELECT 1")
                if cur.fetchone()[0] != 1:
                    raise AssertionError("SELECT 1 did not answer 1")
        except Exception as exc:  # the main thread fails the run
            errors.append(f"{type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=client, args=(conn,)) for conn in connections]
    for worker in workers:
        worker.start()
    ready.wait()
    start = perf_counter()
    for worker in workers:
        worker.join()
    elapsed = perf_counter() - start
    for conn in connections:
        conn.close()
    if errors:
        raise AssertionError(f"{len(errors)} client(s) failed; first: {errors[0]}")
    return elapsed


def _runner(driver: str) -> Callable[..., Figures]:
    def run_threaded(ctx: Context, threads: int, queries: int, warmup: int) -> Figures:
        connect = _connector(driver, ctx.runtime)
        _round_trips(connect, threads, warmup)
        elapsed = _round_trips(connect, threads, queries)
        return {"qps": threads * queries / elapsed}
    run_threaded.__doc__ = f"SELECT 1 round trips with {driver}, plain blocking threads."
    return run_threaded


def _workload(driver: str, label: str) -> Workload:
    return Workload(
        name=f"pg_{driver}",
        title=f"PostgreSQL SELECT 1 round trips with {label}, 50 threads, one connection each",
        metrics=(Metric("qps", f"{label} SELECT 1", "queries/s", higher_is_better=True,
                        target=Target("ratio", ">=", 1.0), primary=True),),
        run_threaded=_runner(driver),
        run_async=None,
        full={"threads": 50, "queries": 400, "warmup": 20},
        quick={"threads": 50, "queries": 20, "warmup": 2},
        needs_postgres=True,
        note="The server runs on the same cores; see bench/workloads/postgres.py for how each "
             "runtime makes the driver green.",
    )


WORKLOADS = [
    _workload("psycopg2", "psycopg2"),
    _workload("psycopg", "psycopg 3"),
    _workload("pg8000", "pg8000"),
]
