"""The drivers people use, under patch_all(): 50 concurrent server-side waits overlap.

For each of psycopg 3, psycopg2, pg8000, PyMySQL, redis-py, and SQLAlchemy 2 over
psycopg and psycopg2: 50 plain ``threading.Thread``s each open one connection and
make one 0.5 s wait on the real server (``pg_sleep``, ``SLEEP()``, ``BLPOP``), while
a ticker thread sleeps 10 ms in a loop. Green, the 50 waits overlap (about 0.5 s
in all) and the ticker keeps its pace; a driver that waits inside C runs them one
after another (25 s) and the ticker sees one long gap. The bounds (2 s, 100 ms)
are generous: a frozen hub misses them tenfold. Time the kernel kept the process
off the CPU (a loaded machine) is not counted in a gap (tests/integrations/_ticker.py).

The pools' checkout must park too: 20 threads share a pool of 5 connections
(psycopg_pool.ConnectionPool, SQLAlchemy's QueuePool), each holding one for a 0.2 s
wait: four rounds, with the ticker on time throughout.

All of it runs in one fresh interpreter (tests/integrations/_driver_waits.py),
patched first thing as a user's program would be.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.servers.real import Server
from tests.util import REPO

DRIVERS = ["psycopg", "psycopg2", "pg8000", "pymysql", "redis", "sqlalchemy+psycopg", "sqlalchemy+psycopg2"]
POOLS = ["psycopg_pool:20:0.2", "sqlalchemy-pool+psycopg2:20:0.2", "sqlalchemy-pool+psycopg:20:0.2"]


def servers_json(postgres: Server, mariadb: Server, redis: Server) -> str:
    return json.dumps({
        "postgres": {"url": postgres.url, "host": postgres.host, "port": postgres.port,
                     "user": postgres.user, "database": postgres.database},
        "mariadb": {"host": mariadb.host, "port": mariadb.port},
        "redis": {"url": redis.url},
    })


def run_waits(servers: str, drivers: list[str], env: dict[str, str] | None = None,
              timeout: float = 120.0) -> dict[str, dict[str, Any]]:
    """Run the child program for ``drivers``; its JSON line for each, by driver name."""
    import os

    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    full_env.pop("GREENSCHED_PREEMPT", None)
    proc = subprocess.run([sys.executable, "-m", "tests.integrations._driver_waits", servers, *drivers],
                          capture_output=True, text=True, timeout=timeout, cwd=str(REPO), env=full_env)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {row["driver"]: row for row in rows}


@pytest.fixture(scope="module")
def measured(postgres_server: Server, mariadb_server: Server,
             redis_server: Server) -> dict[str, dict[str, Any]]:
    return run_waits(servers_json(postgres_server, mariadb_server, redis_server), DRIVERS + POOLS)


@pytest.mark.parametrize("driver", DRIVERS)
def test_fifty_server_side_waits_overlap_and_the_ticker_keeps_time(
        measured: dict[str, dict[str, Any]], driver: str) -> None:
    row = measured[driver]
    assert row["errors"] == [], row
    assert row["results"] == ["1"], row  # every thread got its answer from the server
    assert row["threads"] == 50 and row["seconds"] == 0.5
    # Serialised, 50 waits of 0.5 s take 25 s; overlapped, a little over 0.5 s.
    assert 0.45 <= row["elapsed"] < 2.0, row
    assert row["max_gap"] < 0.1, row


@pytest.mark.parametrize("pool", [p.split(":")[0] for p in POOLS])
def test_pool_checkout_parks(measured: dict[str, dict[str, Any]], pool: str) -> None:
    """20 threads, 5 connections, 0.2 s each: four rounds (>= 0.8 s), the ticker on time."""
    row = measured[pool]
    assert row["errors"] == [] and row["results"] == ["1"], row
    assert 0.75 <= row["elapsed"] < 3.0, row  # the pool's limit held: the threads took turns
    assert row["max_gap"] < 0.1, row


def test_without_the_driver_hooks_psycopg2_freezes_the_hub(postgres_server: Server, mariadb_server: Server,
                                                          redis_server: Server) -> None:
    """patch_all(drivers=False), the documented opt-out: libpq waits in C, one query at a time.

    This is what the hooks fix: 4 waits of 0.25 s run one after another (>= 1 s) and
    the ticker sees a gap of at least one whole wait.
    """
    rows = run_waits(servers_json(postgres_server, mariadb_server, redis_server), ["psycopg2:4:0.25"],
                     env={"GREENSCHED_TEST_DRIVERS": "0"})
    row = rows["psycopg2"]
    assert row["errors"] == [] and row["results"] == ["1"], row
    assert row["elapsed"] >= 0.95, row
    assert row["max_gap"] >= 0.2, row
