"""Pure-Python drivers on sockets, under patch_all(): green by patching, proven on real servers.

redis-py (commands, BLPOP, pub/sub, pipelines and transactions, a blocking
connection pool whose checkout parks), PyMySQL and pg8000 (their own timeouts keep
their meaning), and the HTTP clients httpx (sync), urllib3 and requests. Each test
runs one program in a fresh interpreter, patched first thing, with a ticker thread
that must never see a gap over 100 ms.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.real import Server
from tests.util import REPO, slow_http_server

PRELUDE = """
import greensched
greensched.patch_all()
import os, sys, time, threading

from tests.integrations._ticker import Ticker   # gaps net of time the OS kept us off the CPU

def together(function, n):
    # Run function(i) in n threading.Threads; (results in order, seconds taken).
    results = [None] * n
    def run(i):
        results[i] = function(i)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    started = time.monotonic()
    for t in threads: t.start()
    for t in threads: t.join()
    return results, time.monotonic() - started
"""


def run_child(tmp_path: Path, body: str, env: dict[str, str]) -> None:
    script = tmp_path / "child.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    full_env.pop("GREENSCHED_PREEMPT", None)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90,
                          cwd=str(REPO), env=full_env)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.stdout.strip().endswith("ok"), proc.stdout


def test_redis_commands_blpop_pubsub_pipeline_and_pool(tmp_path: Path, redis_server: Server) -> None:
    run_child(tmp_path, """
        import redis
        URL = os.environ["REDIS_URL"]
        ticker = Ticker()
        r = redis.Redis.from_url(URL)
        r.flushdb()
        assert r.set("k", "v") and r.get("k") == b"v" and r.incr("n") == 1

        # BLPOP woken by a push from another thread, and one that times out on the server.
        def push():
            time.sleep(0.2)
            redis.Redis.from_url(URL).rpush("jobs", "job-1")
        threading.Thread(target=push).start()
        started = time.monotonic()
        assert r.blpop(["jobs"], timeout=5) == (b"jobs", b"job-1")
        assert 0.15 < time.monotonic() - started < 2
        assert r.blpop(["nothing"], timeout=0.3) is None

        # Pub/sub: a subscriber waiting in get_message(timeout) and in listen().
        sub = r.pubsub()
        sub.subscribe("news")
        assert sub.get_message(timeout=2)["type"] == "subscribe"
        def publish():
            time.sleep(0.2)
            redis.Redis.from_url(URL).publish("news", "hello")
        threading.Thread(target=publish).start()
        message = sub.get_message(timeout=5)
        assert message["data"] == b"hello", message
        threading.Thread(target=publish).start()
        for message in sub.listen():
            if message["type"] == "message":
                assert message["data"] == b"hello"
                break
        sub.close()

        # Pipelines, with and without MULTI/EXEC, and WATCH.
        with r.pipeline() as pipe:
            pipe.watch("n")
            pipe.multi()
            pipe.incr("n").incr("n")
            assert pipe.execute() == [2, 3]
        with r.pipeline(transaction=False) as pipe:
            for i in range(100):
                pipe.set(f"p{i}", i)
            assert all(pipe.execute())

        # 50 clients, one pool of 50: 50 server-side waits of 0.3 s overlap.
        pool = redis.ConnectionPool.from_url(URL, max_connections=50)
        results, elapsed = together(
            lambda i: redis.Redis(connection_pool=pool).blpop([f"e{i}"], timeout=0.3), 50)
        assert results == [None] * 50 and elapsed < 1.5, elapsed

        # A BlockingConnectionPool of 3 shared by 9 threads: checkout parks, three rounds.
        blocking = redis.BlockingConnectionPool.from_url(URL, max_connections=3, timeout=10)
        results, elapsed = together(
            lambda i: redis.Redis(connection_pool=blocking).blpop([f"b{i}"], timeout=0.2), 9)
        assert results == [None] * 9 and 0.55 < elapsed < 2.0, elapsed

        # redis-py's own socket timeout still means what it says.
        slow = redis.Redis.from_url(URL, socket_timeout=0.2)
        try:
            slow.blpop(["never"], timeout=2)
        except redis.TimeoutError:
            pass
        else:
            raise AssertionError("no redis.TimeoutError")
        gap = ticker.done()
        assert gap < 0.1, gap
        print("ok")
        """, {"REDIS_URL": redis_server.url})


def test_pymysql_and_pg8000_waits_and_their_own_timeouts(
        tmp_path: Path, mariadb_server: Server, postgres_server: Server) -> None:
    run_child(tmp_path, """
        import pymysql, pg8000.dbapi
        MY = dict(host=os.environ["MY_HOST"], port=int(os.environ["MY_PORT"]), user="root",
                  database="test", ssl_disabled=True)
        PG = dict(host=os.environ["PG_HOST"], port=int(os.environ["PG_PORT"]), user="postgres",
                  database="postgres", ssl_context=False)
        ticker = Ticker()
        conn = pymysql.connect(**MY)
        with conn.cursor() as cur:
            cur.execute("CREATE TEMPORARY TABLE t (n INT)")
            cur.executemany("INSERT INTO t VALUES (%s)", [(i,) for i in range(100)])
            cur.execute("SELECT n FROM t ORDER BY n")
            assert [row[0] for row in cur.fetchall()] == list(range(100))
            cur.execute("SELECT SLEEP(0.3)")
        # PyMySQL's read_timeout: its OperationalError, as unpatched.
        short = pymysql.connect(read_timeout=0.3, **MY)
        started = time.monotonic()
        try:
            short.cursor().execute("SELECT SLEEP(3)")
        except pymysql.err.OperationalError as exc:
            assert "timed out" in str(exc), exc
        else:
            raise AssertionError("no OperationalError")
        assert time.monotonic() - started < 2

        pg = pg8000.dbapi.connect(**PG)
        cur = pg.cursor()
        cur.execute("SELECT pg_sleep(0.3), 1")
        assert cur.fetchone()[1] == 1
        # pg8000's timeout= (a socket timeout): the socket's TimeoutError, as unpatched.
        short = pg8000.dbapi.connect(timeout=0.3, **PG)
        started = time.monotonic()
        try:
            short.cursor().execute("SELECT pg_sleep(3)")
        except TimeoutError:
            pass
        else:
            raise AssertionError("no TimeoutError")
        assert time.monotonic() - started < 2
        gap = ticker.done()
        assert gap < 0.1, gap
        print("ok")
        """, {"MY_HOST": mariadb_server.host, "MY_PORT": str(mariadb_server.port),
              "PG_HOST": postgres_server.host, "PG_PORT": str(postgres_server.port)})


@pytest.fixture
def slow_http() -> Iterator[int]:
    """tests/servers/slow_http.py answering each GET after 0.5 s; yields its port."""
    with slow_http_server(0.5) as port:
        yield port


def test_httpx_urllib3_and_requests_fifty_slow_requests_overlap(tmp_path: Path, slow_http: int) -> None:
    run_child(tmp_path, """
        import httpx, urllib3, requests
        BASE = f"http://127.0.0.1:{os.environ['HTTP_PORT']}"
        # The clients first, as a program makes them at start-up: an httpx.Client loads the
        # CA bundle into a TLS context (tens of ms of C work, not waiting) when it is made.
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
        client = httpx.Client(limits=limits, timeout=10)
        impatient = httpx.Client(timeout=0.2)
        pool = urllib3.PoolManager(maxsize=50)
        session = requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=50))
        ticker = Ticker()
        results, elapsed = together(lambda i: client.get(f"{BASE}/httpx/{i}").text, 50)
        assert results == [f"/httpx/{i}" for i in range(50)] and elapsed < 2.0, elapsed
        results, elapsed = together(lambda i: pool.request("GET", f"{BASE}/urllib3/{i}").data.decode(), 50)
        assert results == [f"/urllib3/{i}" for i in range(50)] and elapsed < 2.0, elapsed
        results, elapsed = together(lambda i: session.get(f"{BASE}/requests/{i}", timeout=10).text, 50)
        assert results == [f"/requests/{i}" for i in range(50)] and elapsed < 2.0, elapsed
        # httpx's own timeout: its ReadTimeout, as unpatched.
        try:
            impatient.get(f"{BASE}/late")
        except httpx.ReadTimeout:
            pass
        else:
            raise AssertionError("no ReadTimeout")
        gap = ticker.done()
        client.close()
        impatient.close()
        assert gap < 0.1, gap
        print("ok")
        """, {"HTTP_PORT": str(slow_http)})
