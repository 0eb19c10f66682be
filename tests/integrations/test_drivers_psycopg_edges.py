"""psycopg2 and psycopg 3 under patch_all(): the edges a reviewer found, each against a real PostgreSQL.

Each test is a regression test for one bug (named in its docstring) and runs a program in
a fresh interpreter, patched first thing (`run_child` of test_drivers_psycopg.py). Servers
that misbehave (a cancel connection that hangs, a server that accepts and never answers)
are small loopback listeners made here, in the child.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.integrations.test_drivers_psycopg import ok, run_child
from tests.servers.real import Server

# A hang fails the test in 20 s, with every thread's stack, rather than at run_child's 90 s.
WATCHDOG = "import faulthandler; faulthandler.dump_traceback_later(20, exit=True)\n"

# A loopback TCP proxy to the real server: forwards the first ``forward`` connections and
# accepts later ones without ever answering them (a cancel request that hangs, as behind a
# dead network or an overloaded postmaster). Unpatched threads (the original socket
# functions) so it works whatever the child does with the hub.
PROXY = """
import socket as _socket
from greensched.monkey import original as _original
_OSThread = _original("_thread", "start_new_thread")
_real_socket = _original("socket", "socket")

def start_proxy(host, port, forward=1):
    listener = _real_socket(_socket.AF_INET, _socket.SOCK_STREAM)
    listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []
    def pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(_socket.SHUT_RDWR)
                except OSError:
                    pass
    def serve():
        count = 0
        while True:
            client, _ = listener.accept()
            count += 1
            if count > forward:
                held.append(client)   # accepted, never answered
                continue
            upstream = _real_socket(_socket.AF_INET, _socket.SOCK_STREAM)
            upstream.connect((host, port))
            _OSThread(pump, (client, upstream))
            _OSThread(pump, (upstream, client))
    _OSThread(serve, ())
    return listener.getsockname()[1], held
"""


def test_find_spec_probe_then_import_still_patches_the_driver(
    tmp_path: Path, postgres_server: Server) -> None:
    """Bug 4: the import hook left at ``find_spec`` time, so a probe then an import was unpatched."""
    ok(run_child(tmp_path, postgres_server, """
        import importlib.util
        assert importlib.util.find_spec("psycopg") is not None      # an optional-dependency probe
        assert importlib.util.find_spec("psycopg2") is not None
        import psycopg, psycopg2.extensions
        from greensched.monkey import is_module_patched, _psycopg
        assert psycopg.waiting.wait is _psycopg.wait, psycopg.waiting.wait
        assert psycopg2.extensions.get_wait_callback() is _psycopg.wait_callback
        assert is_module_patched("psycopg") and is_module_patched("psycopg2")
        print("ok")
        """))


def test_a_module_whose_body_raises_is_patched_when_a_later_import_succeeds(
        tmp_path: Path, postgres_server: Server) -> None:
    """Bug 4: the hook was spent on an import whose body raised; the next import stayed unpatched."""
    (tmp_path / "flaky_mod.py").write_text(
        "import os\n"
        "if os.path.exists(os.path.join(os.path.dirname(__file__), 'fail')):\n"
        "    raise ImportError('flaky_mod: not this time')\n")
    (tmp_path / "fail").write_text("")
    ok(run_child(tmp_path, postgres_server, f"""
        sys.path.insert(0, {str(tmp_path)!r})
        from greensched.monkey._postimport import when_imported, _finder
        calls = []
        when_imported("flaky_mod", lambda: calls.append(sys.modules["flaky_mod"]))
        try:
            import flaky_mod
        except ImportError:
            pass
        else:
            raise AssertionError("flaky_mod imported")
        assert calls == [] and "flaky_mod" in _finder.hooks and _finder in sys.meta_path
        os.remove({str(tmp_path / "fail")!r})
        import flaky_mod
        assert calls == [flaky_mod], calls
        assert "flaky_mod" not in _finder.hooks
        print("ok")
        """))


def test_psycopg_notifies_timeout_zero_returns_a_notification_already_waiting(
        tmp_path: Path, postgres_server: Server) -> None:
    """Bug 5: ``timeout=0`` never looked at the socket, so ``notifies(timeout=0)`` found
    nothing (psycopg 3.3), or waited forever (3.2, which passes it as an interval of 0)."""
    ok(run_child(tmp_path, postgres_server, before=WATCHDOG, body="""
        import psycopg
        with (psycopg.connect(URL, autocommit=True) as listener,
              psycopg.connect(URL, autocommit=True) as sender):
            listener.execute("LISTEN greensched")
            sender.execute("NOTIFY greensched, 'waiting'")
            # The notification is in the listener's socket (readable, unread) before we ask.
            assert greensched.wait_readable(listener.pgconn.socket, 5)
            assert [n.payload for n in listener.notifies(timeout=0)] == ["waiting"]
            assert list(listener.notifies(timeout=0)) == []   # and nothing more
        print("ok")
        """))


def test_psycopg_any_exception_thrown_into_a_query_cancels_it_and_keeps_the_connection(
        tmp_path: Path, postgres_server: Server) -> None:
    """Bug 6: an exception outside psycopg's ``_INTERRUPTED`` left the connection busy, the query running."""
    ok(run_child(tmp_path, postgres_server, """
        import psycopg
        other = psycopg.connect(URL, autocommit=True)
        activity = lambda pid: other.execute(
            "SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        conn = psycopg.connect(URL, autocommit=True)
        pid = conn.info.backend_pid
        running = threading.Event()
        def query():
            running.set()
            conn.execute("SELECT pg_sleep(10)")
        thread = greensched.spawn(query)
        running.wait()
        for _ in range(250):   # until the server runs it
            if activity(pid) == ("active",):
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the query never started")
        started = time.monotonic()
        thread.throw(ValueError("x"))   # as Celery's SoftTimeLimitExceeded would be
        exc = thread.exception(5)
        assert isinstance(exc, ValueError) and str(exc) == "x", repr(exc)
        assert time.monotonic() - started < 4
        assert gone_or_idle(pid, activity)
        assert not conn.closed
        assert conn.execute("SELECT 1").fetchone() == (1,)
        print("ok")
        """))


def test_psycopg2_cancel_that_hangs_never_freezes_the_process(
    tmp_path: Path, postgres_server: Server) -> None:
    """Bug 1: the cancel used PQcancel, which waits in C with the GIL held: a cancel
    connection that hangs froze every thread (> 60 s). Now it is green and bounded."""
    s = postgres_server
    ok(run_child(tmp_path, postgres_server, before=WATCHDOG,
                 body=PROXY + textwrap.dedent(f"""
        import psycopg2
        from greensched.monkey import _psycopg
        _psycopg.CANCEL_GRACE = 1.0   # the test's patience; 5 s by default
        port, held = start_proxy({s.host!r}, {s.port}, forward=1)
        conn = psycopg2.connect(host="127.0.0.1", port=port, user={s.user!r}, dbname={s.database!r})
        pid = conn.get_backend_pid()
        ticker = Ticker()
        started = time.monotonic()
        try:
            with greensched.Timeout(0.2):
                conn.cursor().execute("SELECT pg_sleep(20)")
        except greensched.TimeoutExpired:
            pass
        else:
            raise AssertionError("no timeout")
        elapsed = time.monotonic() - started
        gap = ticker.done()
        assert held, "the cancel never reached the proxy"
        assert 0.9 < elapsed < 4, elapsed      # the grace, then the Timeout goes on
        assert gap < 0.5, gap                   # green all along
        assert conn.closed
        # The cancel never got through, so the query still runs: end it (the server's
        # shutdown would wait for it).
        direct = psycopg2.connect(URL)
        direct.autocommit = True
        direct.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
        print("ok")
        """)))


# A server that accepts connections and never answers: the kernel completes the TCP
# handshake for a listening socket that is never accept()ed.
SILENT = """
import socket as _socket
from greensched.monkey import original as _original
silent = _original("socket", "socket")(_socket.AF_INET, _socket.SOCK_STREAM)
silent.bind(("127.0.0.1", 0))
silent.listen(16)
SILENT_PORT = silent.getsockname()[1]
"""


def test_psycopg2_connect_timeout_holds_under_the_wait_callback(
    tmp_path: Path, postgres_server: Server) -> None:
    """Bug 3: libpq ignores connect_timeout for the non-blocking connect a wait callback
    makes it use: against a server that never answers, the connect hung."""
    ok(run_child(tmp_path, postgres_server, before=WATCHDOG,
                 body=SILENT + textwrap.dedent("""
        import psycopg2
        ticker = Ticker()
        started = time.monotonic()
        try:
            psycopg2.connect(host="127.0.0.1", port=SILENT_PORT, user="postgres", connect_timeout=2)
        except psycopg2.OperationalError as exc:
            assert "timeout expired" in str(exc), exc
        else:
            raise AssertionError("connected to a silent server")
        elapsed = time.monotonic() - started
        assert 1.9 < elapsed < 4, elapsed     # libpq's rule: 2 s
        gap = ticker.done()
        assert gap < 0.1, gap
        conn = psycopg2.connect(URL, connect_timeout=2)   # a live server: connects as before
        conn.cursor().execute("SELECT 1")
        print("ok")
        """)))


def test_psycopg_connect_timeout_holds_green(
    tmp_path: Path, postgres_server: Server) -> None:
    """Bug 3's check for psycopg 3: it implements connect_timeout in Python, which our
    wait_conn keeps (its ``timeout``), green."""
    ok(run_child(tmp_path, postgres_server, before=WATCHDOG,
                 body=SILENT + textwrap.dedent("""
        import psycopg
        ticker = Ticker()
        started = time.monotonic()
        try:
            psycopg.connect(host="127.0.0.1", port=SILENT_PORT, user="postgres", connect_timeout=2)
        except psycopg.OperationalError as exc:
            assert "timeout expired" in str(exc), exc
        else:
            raise AssertionError("connected to a silent server")
        elapsed = time.monotonic() - started
        assert 1.9 < elapsed < 4, elapsed
        gap = ticker.done()
        assert gap < 0.1, gap
        print("ok")
        """)))


def test_psycopg2_connection_used_from_a_second_green_thread_is_named_in_the_detector_report(
        tmp_path: Path, postgres_server: Server) -> None:
    """Bug 2 (documented, not fixed: docs/drivers.md says why): psycopg2 holds a connection's
    C lock while its query parks, so ``close()`` on it from another green thread waits for
    that lock in C, holding the OS thread: a deadlock. The blocking detector now says so."""
    proc = run_child(tmp_path, postgres_server, """
        import psycopg2
        conn = psycopg2.connect(URL)
        print("pid", conn.get_backend_pid(), flush=True)
        running = threading.Event()
        def query():
            running.set()
            conn.cursor().execute("SELECT pg_sleep(30)")
        threading.Thread(target=query, name="the-query").start()
        running.wait()
        time.sleep(0.2)            # parked in the wait callback, holding the lock
        greensched.start_blocking_detector(0.1)
        import faulthandler
        faulthandler.dump_traceback_later(1.5, exit=True)   # the deadlock's only way out
        conn.close()               # deadlocks: waits in C for the lock the query holds
        print("closed")
        """)
    pid = int(proc.stdout.split()[1])
    import psycopg2
    with psycopg2.connect(postgres_server.url) as direct:   # end the orphaned query
        direct.autocommit = True
        direct.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
    assert "closed" not in proc.stdout, (proc.stdout, proc.stderr)   # if psycopg2 changes: update the docs
    report = proc.stderr
    assert "has held the CPU for" in report, report
    assert ("psycopg2: 1 connection(s) are in the middle of a query, parked in green thread(s) "
            "'the-query'") in report, report
    assert "close()" in report and "deadlock" in report, report
