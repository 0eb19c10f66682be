"""psycopg2 and psycopg 3 under patch_all(), against a real PostgreSQL: green, and never wedged.

Both drivers wait inside libpq's C code unless a hook is installed
(greensched/monkey/_psycopg.py). Each test runs a program in a fresh interpreter,
patched first thing, and checks what a user would see: every kind of wait parks
(connect, execute, fetch, COPY, LISTEN/NOTIFY, the pool), a `greensched.Timeout`
or a kill during a query cancels it *on the server*, ``statement_timeout`` acts as
unpatched, the hook is there whether the driver was imported before or after
patching, and ``patch_all(drivers=False)`` leaves it out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.servers.real import Server
from tests.util import REPO

PRELUDE = """
import greensched
greensched.patch_all(drivers={drivers})
import os, sys, time, io, threading
URL = os.environ["PG_URL"]

def gone_or_idle(query_pid, other):
    # Poll pg_stat_activity (the backend may take a moment to exit); True once the
    # query no longer runs there.
    for _ in range(100):
        state = other(query_pid)
        if state is None or state[0] != "active":
            return True
        time.sleep(0.02)
    return False

from tests.integrations._ticker import Ticker   # gaps net of time the OS kept us off the CPU
"""


def run_child(tmp_path: Path, server: Server, body: str, drivers: bool = True,
              before: str = "") -> subprocess.CompletedProcess[str]:
    """Run PRELUDE + ``body`` as a file (so tracebacks and reports show its lines)."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(before) + PRELUDE.format(drivers=drivers) + textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": str(REPO), "PG_URL": server.url}
    env.pop("GREENSCHED_PREEMPT", None)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90,
                          cwd=str(REPO), env=env)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.stdout.strip().endswith("ok"), proc.stdout
    return proc.stdout


# -- psycopg2 ----------------------------------------------------------------------------------


def test_psycopg2_connect_execute_fetch_notify_park_and_copy_is_refused(tmp_path: Path,
                                                                        postgres_server: Server) -> None:
    ok(run_child(tmp_path, postgres_server, """
        import psycopg2, psycopg2.extensions, select
        from greensched.monkey import is_module_patched
        assert is_module_patched("psycopg2")
        assert psycopg2.extensions.get_wait_callback().__module__ == "greensched.monkey._psycopg"
        ticker = Ticker()
        conn = psycopg2.connect(URL)
        cur = conn.cursor()
        cur.execute("CREATE TEMP TABLE t (n int, s text)")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, str(i)) for i in range(100)])
        cur.execute("SELECT n, s FROM t ORDER BY n")
        assert cur.fetchmany(3) == [(0, "0"), (1, "1"), (2, "2")] and len(cur.fetchall()) == 97
        with conn.cursor(name="server_side") as named:   # a server-side cursor: fetches go back to the server
            named.itersize = 7
            named.execute("SELECT n FROM t ORDER BY n")
            assert [row[0] for row in named] == list(range(100))
        # COPY: psycopg2 refuses it whenever a wait callback is set (its EXC_IF_GREEN check;
        # psycogreen under gevent gets the same). The error is clear and the connection usable;
        # docs/drivers.md gives the remedies (psycopg 3's COPY is green).
        for copy in (lambda: cur.copy_expert("COPY t FROM STDIN", io.StringIO("1\\tx\\n")),
                     lambda: cur.copy_expert("COPY t TO STDOUT", io.StringIO()),
                     lambda: cur.copy_from(io.StringIO("1\\tx\\n"), "t")):
            try:
                copy()
            except psycopg2.ProgrammingError as exc:
                assert "cannot be used with an asynchronous callback" in str(exc), exc
            else:
                raise AssertionError("COPY worked under a wait callback: update docs/drivers.md")
        cur.execute("SELECT count(*) FROM t")
        assert cur.fetchone() == (100,)
        conn.commit()
        # A 0.3 s server-side wait: the ticker runs meanwhile.
        cur.execute("SELECT pg_sleep(0.3)")
        # LISTEN/NOTIFY: wait for the notification with a green select, as psycopg2's docs do.
        listener = psycopg2.connect(URL)
        listener.autocommit = True
        listener.cursor().execute("LISTEN greensched")
        def notify():
            time.sleep(0.2)
            cur.execute("NOTIFY greensched, 'hello'")
            conn.commit()
        threading.Thread(target=notify).start()
        started = time.monotonic()
        assert select.select([listener], [], [], 5) == ([listener], [], [])
        listener.poll()
        assert [n.payload for n in listener.notifies] == ["hello"]
        assert 0.15 < time.monotonic() - started < 2
        gap = ticker.done()
        assert gap < 0.1, gap
        print("ok")
        """))


def test_psycopg2_timeout_and_kill_cancel_the_query_on_the_server(tmp_path: Path,
                                                                  postgres_server: Server) -> None:
    ok(run_child(tmp_path, postgres_server, """
        import psycopg2
        other = psycopg2.connect(URL)
        other.autocommit = True
        def activity(pid):
            with other.cursor() as c:
                c.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,))
                return c.fetchone()

        # A Timeout: raised on time; psycopg2 closes the connection (its rule for any error in
        # a wait callback), and the query no longer runs on the server.
        conn = psycopg2.connect(URL)
        pid = conn.get_backend_pid()
        started = time.monotonic()
        try:
            with greensched.Timeout(0.2):
                conn.cursor().execute("SELECT pg_sleep(30)")
        except greensched.TimeoutExpired:
            pass
        else:
            raise AssertionError("no timeout")
        assert time.monotonic() - started < 2.0
        assert conn.closed
        assert gone_or_idle(pid, activity)

        # A kill while the query runs: the same.
        conn = psycopg2.connect(URL)
        pid = conn.get_backend_pid()
        running = threading.Event()
        def query():
            running.set()
            conn.cursor().execute("SELECT pg_sleep(30)")
        thread = greensched.spawn(query)
        running.wait()
        time.sleep(0.2)
        assert activity(pid) == ("active",)
        thread.kill()
        thread.join(5)
        assert not thread.is_alive() and conn.closed
        assert gone_or_idle(pid, activity)

        # The server's own statement_timeout: psycopg2's QueryCanceled, the connection usable.
        conn = psycopg2.connect(URL)
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SET statement_timeout = 100")
        try:
            cur.execute("SELECT pg_sleep(5)")
        except psycopg2.errors.QueryCanceled:
            pass
        else:
            raise AssertionError("no QueryCanceled")
        cur.execute("SELECT 42")
        assert cur.fetchone() == (42,) and not conn.closed
        print("ok")
        """))


def test_psycopg2_imported_before_patch_all_gets_the_callback(tmp_path: Path,
                                                              postgres_server: Server) -> None:
    ok(run_child(tmp_path, postgres_server, before="import psycopg2, psycopg2.extensions\n", body="""
        from greensched.monkey import _psycopg
        assert psycopg2.extensions.get_wait_callback() is _psycopg.wait_callback
        # Only psycopg 3, not yet imported, is left for the import hook.
        from greensched.monkey._postimport import _finder
        assert "psycopg" in _finder.hooks and "psycopg2" not in _finder.hooks
        print("ok")
        """))


def test_the_import_hook_leaves_once_every_awaited_module_is_in(tmp_path: Path,
                                                                postgres_server: Server) -> None:
    ok(run_child(tmp_path, postgres_server, """
        from greensched.monkey._postimport import _finder
        drivers = lambda: {"psycopg", "psycopg2"} & set(_finder.hooks)
        assert drivers() == {"psycopg", "psycopg2"} and _finder in sys.meta_path
        import psycopg2
        assert drivers() == {"psycopg"}
        assert psycopg2.__loader__.__class__.__name__ == "SourceFileLoader"   # its own loader back
        import psycopg
        assert drivers() == set()
        import asyncio   # the other patch that waits for an import (patch_all(asyncio=True))
        assert _finder not in sys.meta_path     # nothing left to wait for: the finder is gone
        from greensched.monkey import is_module_patched
        assert is_module_patched("psycopg") and is_module_patched("psycopg.waiting")
        print("ok")
        """))


def test_patch_all_drivers_false_opts_out_and_a_callback_of_your_own_is_kept(
        tmp_path: Path, postgres_server: Server) -> None:
    ok(run_child(tmp_path, postgres_server, drivers=False, body="""
        import psycopg2.extensions, psycopg.waiting
        from greensched.monkey import is_module_patched
        assert psycopg2.extensions.get_wait_callback() is None
        assert psycopg.waiting.wait is psycopg.waiting.wait_c   # psycopg's own choice
        assert not is_module_patched("psycopg2") and not is_module_patched("psycopg")
        # A program that chose its own callback keeps it (with a warning naming the opt-out).
        from greensched.monkey import _psycopg
        mine = lambda conn: None
        psycopg2.extensions.set_wait_callback(mine)
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _psycopg.patch()
        assert psycopg2.extensions.get_wait_callback() is mine
        assert any("keeping it" in str(w.message) and "drivers=False" in str(w.message) for w in caught)
        print("ok")
        """))


def test_blocking_detector_names_the_python_caller_of_a_stuck_c_call(
        tmp_path: Path, postgres_server: Server) -> None:
    """Without the hook, libpq waits in C poll() and retries EINTR in C: no Python runs,
    nothing can preempt it. The detector's report names the line that made the call."""
    proc = run_child(tmp_path, postgres_server, drivers=False, body="""
        import psycopg2
        greensched.start_blocking_detector(0.1)
        conn = psycopg2.connect(URL)
        def run_query():
            cur = conn.cursor()
            cur.execute("SELECT pg_sleep(0.6)")  # the stuck call
            return cur.fetchone()
        ticker = Ticker()
        assert run_query() == ("",)
        gap = ticker.done()
        assert gap >= 0.4, gap   # the hub really was frozen: this is the case the report is for
        print("ok")
        """)
    ok(proc)
    script = tmp_path / "child.py"
    line = next(n for n, text in enumerate(script.read_text().splitlines(), 1) if "# the stuck call" in text)
    report = proc.stderr
    assert "has held the CPU for" in report and "to_thread()" in report, report
    assert (f"The call that has not returned was made at {script}:{line}, in run_query(): "
            f"cur.execute(\"SELECT pg_sleep(0.6)\")") in report, report


# -- psycopg 3 ---------------------------------------------------------------------------------


def test_psycopg_connect_execute_fetch_copy_pipeline_and_notifies_park(
        tmp_path: Path, postgres_server: Server) -> None:
    ok(run_child(tmp_path, postgres_server, """
        import psycopg, psycopg.waiting
        from greensched.monkey import is_module_patched, _psycopg
        assert is_module_patched("psycopg")
        assert psycopg.waiting.wait is _psycopg.wait and psycopg.waiting.wait_conn is _psycopg.wait_conn
        ticker = Ticker()
        with psycopg.connect(URL) as conn:
            conn.execute("CREATE TEMP TABLE t (n int)")
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO t VALUES (%s)", [(i,) for i in range(100)])
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (100,)
            with conn.cursor(name="server_side") as named:
                named.itersize = 7
                named.execute("SELECT n FROM t ORDER BY n")
                assert [row[0] for row in named] == list(range(100))
            with conn.cursor().copy("COPY t FROM STDIN") as copy:
                for i in range(100, 5100):
                    copy.write_row((i,))
            with conn.cursor().copy("COPY (SELECT n FROM t ORDER BY n) TO STDOUT") as copy:
                assert [int(row[0]) for row in copy.rows()] == list(range(5100))
            with conn.pipeline():   # many queries in flight: waits for read and write together
                cursors = [conn.execute("SELECT %s::int", (i,)) for i in range(200)]
            assert [c.fetchone()[0] for c in cursors] == list(range(200))
            conn.execute("SELECT pg_sleep(0.3)")
            conn.commit()
        with (psycopg.connect(URL, autocommit=True) as listener,
              psycopg.connect(URL, autocommit=True) as sender):
            listener.execute("LISTEN greensched")
            def notify():
                time.sleep(0.2)
                sender.execute("NOTIFY greensched, 'hello'")
            threading.Thread(target=notify).start()
            started = time.monotonic()
            payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
            assert payloads == ["hello"] and 0.15 < time.monotonic() - started < 2
            started = time.monotonic()
            assert list(listener.notifies(timeout=0.2)) == []   # psycopg's own wait timeout
            assert 0.15 < time.monotonic() - started < 1
        gap = ticker.done()
        assert gap < 0.1, gap
        print("ok")
        """))


def test_psycopg_timeout_and_kill_cancel_the_query_and_keep_the_connection(
        tmp_path: Path, postgres_server: Server) -> None:
    ok(run_child(tmp_path, postgres_server, """
        import psycopg
        from psycopg.pq import TransactionStatus
        other = psycopg.connect(URL, autocommit=True)
        def activity(pid):
            return other.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()

        conn = psycopg.connect(URL, autocommit=True)
        pid = conn.info.backend_pid
        started = time.monotonic()
        try:
            with greensched.Timeout(0.2):
                conn.execute("SELECT pg_sleep(30)")
        except greensched.TimeoutExpired:
            pass
        else:
            raise AssertionError("no timeout")
        assert time.monotonic() - started < 2.0
        # psycopg cancelled the query and read the server's answer: the connection is idle, usable.
        assert not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE
        assert gone_or_idle(pid, activity)
        assert conn.execute("SELECT 1").fetchone() == (1,)

        running = threading.Event()
        def query():
            running.set()
            conn.execute("SELECT pg_sleep(30)")
        thread = greensched.spawn(query)
        running.wait()
        time.sleep(0.2)
        assert activity(pid) == ("active",)
        thread.kill()
        thread.join(5)
        assert not thread.is_alive()
        assert gone_or_idle(pid, activity)
        assert conn.execute("SELECT 2").fetchone() == (2,)

        conn.execute("SET statement_timeout = 100")
        try:
            conn.execute("SELECT pg_sleep(5)")
        except psycopg.errors.QueryCanceled:
            pass
        else:
            raise AssertionError("no QueryCanceled")
        assert conn.execute("SELECT 3").fetchone() == (3,)
        print("ok")
        """))


def test_psycopg_imported_before_patch_all_is_made_green(tmp_path: Path, postgres_server: Server) -> None:
    ok(run_child(tmp_path, postgres_server, before="import psycopg, psycopg_pool\n", body="""
        from greensched.monkey import _psycopg
        assert psycopg.waiting.wait is _psycopg.wait
        ticker = Ticker()
        def wait():
            with psycopg.connect(URL) as conn:
                conn.execute("SELECT pg_sleep(0.3)")
        threads = [threading.Thread(target=wait) for _ in range(10)]
        started = time.monotonic()
        for t in threads: t.start()
        for t in threads: t.join()
        assert time.monotonic() - started < 1.5
        gap = ticker.done()
        assert gap < 0.1, gap
        print("ok")
        """))


def test_psycopg_pool_timeout_parks_and_raises_pool_timeout(tmp_path: Path, postgres_server: Server) -> None:
    ok(run_child(tmp_path, postgres_server, """
        import psycopg_pool
        ticker = Ticker()
        with psycopg_pool.ConnectionPool(URL, min_size=1, max_size=1) as pool:
            held = threading.Event()
            release = threading.Event()
            def hold():
                with pool.connection():
                    held.set()
                    release.wait()
            holder = threading.Thread(target=hold)
            holder.start()
            held.wait()
            started = time.monotonic()
            try:
                pool.getconn(timeout=0.3)
            except psycopg_pool.PoolTimeout:
                pass
            else:
                raise AssertionError("no PoolTimeout")
            assert 0.25 < time.monotonic() - started < 1.5
            release.set()
            holder.join()
            with pool.connection(timeout=5) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        gap = ticker.done()
        assert gap < 0.1, gap
        print("ok")
        """))
