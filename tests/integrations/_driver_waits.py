"""Child program of tests/integrations/test_drivers_*.py: concurrent server-side waits.

    python -m tests.integrations._driver_waits SERVERS_JSON DRIVER[:THREADS:SECONDS] ...

Under ``patch_all()`` (called first, as a user would), for each driver named,
start THREADS plain ``threading.Thread``s that each open one connection and make
one server-side wait of SECONDS (``pg_sleep``, ``SLEEP()``, ``BLPOP``), while a
ticker thread sleeps 10 ms in a loop and records its longest gap
(tests/integrations/_ticker.py). Prints one JSON line per driver:
``{"driver", "threads", "elapsed", "max_gap", "raw_max_gap", "errors", "results"}``.

Drivers: psycopg, psycopg2, pg8000, pymysql, redis, sqlalchemy+psycopg,
sqlalchemy+psycopg2 (an engine whose QueuePool holds all THREADS), and the pools,
whose checkout must park: psycopg_pool, sqlalchemy-pool+psycopg and
sqlalchemy-pool+psycopg2, a pool of 5 connections shared by all THREADS.
``GREENSCHED_TEST_DRIVERS=0`` runs ``patch_all(drivers=False)``.
"""

from __future__ import annotations

import os

import greensched

# GREENSCHED_TEST_DRIVERS=0: patch_all(drivers=False), to show what the driver hooks change.
greensched.patch_all(drivers=os.environ.get("GREENSCHED_TEST_DRIVERS", "1") != "0")

import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

from tests.integrations._ticker import Ticker  # noqa: E402

POOL_SIZE = 5


def make_waiter(driver: str, servers: dict[str, Any], seconds: float) -> Callable[[], Any]:
    """A function that opens one connection, waits ``seconds`` on the server, returns a value."""
    pg = servers["postgres"]
    if driver == "psycopg":
        import psycopg

        def run() -> Any:
            with psycopg.connect(pg["url"]) as conn:
                return conn.execute("SELECT pg_sleep(%s), 1", (seconds,)).fetchone()[1]
        return run
    if driver == "psycopg2":
        import psycopg2

        def run() -> Any:
            conn = psycopg2.connect(pg["url"])
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_sleep(%s), 1", (seconds,))
                    return cur.fetchone()[1]
            finally:
                conn.close()
        return run
    if driver == "pg8000":
        import pg8000.dbapi

        # ssl_context=False: by default pg8000 builds a TLS context for every connection
        # (~25 ms of CPU loading the CA store), with or without green threads.
        def run() -> Any:
            conn = pg8000.dbapi.connect(user=pg["user"], host=pg["host"], port=pg["port"],
                                        database=pg["database"], ssl_context=False)
            try:
                cur = conn.cursor()
                cur.execute("SELECT pg_sleep(%s), 1", (seconds,))
                return cur.fetchone()[1]
            finally:
                conn.close()
        return run
    if driver == "pymysql":
        import pymysql

        my = servers["mariadb"]

        # ssl_disabled: PyMySQL too builds a TLS context per connection when the server offers TLS.
        def run() -> Any:
            conn = pymysql.connect(host=my["host"], port=my["port"], user="root", database="test",
                                   ssl_disabled=True)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT SLEEP(%s), 1", (seconds,))
                    return cur.fetchone()[1]
            finally:
                conn.close()
        return run
    if driver == "redis":
        import redis

        url = servers["redis"]["url"]

        def run() -> Any:
            client = redis.Redis.from_url(url)
            try:
                # Nobody pushes: BLPOP waits its whole timeout on the server, then answers None.
                key = f"greensched-empty-{threading.get_ident()}"
                return 1 if client.blpop([key], timeout=seconds) is None else 0
            finally:
                client.close()
        return run
    if driver.startswith("sqlalchemy"):
        import sqlalchemy

        dialect = driver.split("+", 1)[1]
        size = POOL_SIZE if driver.startswith("sqlalchemy-pool") else 1000
        engine = sqlalchemy.create_engine(f"postgresql+{dialect}://{pg['user']}@{pg['host']}:{pg['port']}/"
                                          f"{pg['database']}", pool_size=size, max_overflow=0,
                                          pool_timeout=30)

        def run() -> Any:
            with engine.connect() as conn:
                return conn.execute(sqlalchemy.text("SELECT pg_sleep(:s), 1"), {"s": seconds}).one()[1]
        run.close = engine.dispose  # type: ignore[attr-defined]
        return run
    if driver == "psycopg_pool":
        import psycopg_pool

        pool = psycopg_pool.ConnectionPool(pg["url"], min_size=POOL_SIZE, max_size=POOL_SIZE, open=True)
        pool.wait(timeout=30)

        def run() -> Any:
            with pool.connection() as conn:
                return conn.execute("SELECT pg_sleep(%s), 1", (seconds,)).fetchone()[1]
        run.close = pool.close  # type: ignore[attr-defined]
        return run
    raise SystemExit(f"unknown driver {driver!r}")


def measure(driver: str, servers: dict[str, Any], threads: int, seconds: float) -> dict[str, Any]:
    waiter = make_waiter(driver, servers, seconds)
    waiter()  # warm up: imports, the first connection, the pool's first fill
    results: list[Any] = []
    errors: list[str] = []
    def work() -> None:
        try:
            results.append(waiter())
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    ticker = Ticker()
    time.sleep(0.05)
    started = time.monotonic()
    workers = [threading.Thread(target=work, name=f"{driver}-{i}") for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    elapsed = time.monotonic() - started
    ticker.done()
    close = getattr(waiter, "close", None)
    if close is not None:
        close()
    return {"driver": driver, "threads": threads, "seconds": seconds, "elapsed": elapsed,
            "max_gap": ticker.max_gap, "raw_max_gap": ticker.raw_max_gap, "errors": errors[:5],
            "results": sorted(set(map(repr, results)))}


def main(argv: list[str]) -> None:
    servers = json.loads(argv[0])
    pg = servers["postgres"]
    parts = urlsplit(pg["url"])
    pg.setdefault("user", parts.username)
    pg.setdefault("database", parts.path.lstrip("/"))
    for arg in argv[1:]:
        driver, *rest = arg.split(":")
        threads = int(rest[0]) if rest else 50
        seconds = float(rest[1]) if len(rest) > 1 else 0.5
        print(json.dumps(measure(driver, servers, threads, seconds)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
