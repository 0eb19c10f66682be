"""gunicorn's GreenWorker, run for real: ``python -m gunicorn -k greensched.gunicorn.GreenWorker``.

Each test starts gunicorn on 127.0.0.1 (port 0: the kernel picks a free one, read
back from gunicorn's "Listening at" line) serving tests/servers/wsgi_app.py, and
always stops it: SIGTERM, then SIGKILL to its process group and to any worker still
alive. The clients are plain OS threads in this (unpatched) process, using
http.client or raw sockets.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.util import REPO

# `once`: CI runs these on its first interpreter only (.ci/run): real gunicorn
# masters and workers; the worker's core parts are tested on each version.
pytestmark = pytest.mark.once

gunicorn = pytest.importorskip(
    "gunicorn", reason="gunicorn is not installed: pip install -e '.[test]' (or '.[gunicorn]')"
)

APP_DIR = REPO / "tests" / "servers"
WORKER = "greensched.gunicorn.GreenWorker"
BOOT_TIMEOUT_S = 20.0


def _gunicorn_supports(setting: str) -> bool:
    from gunicorn.config import KNOWN_SETTINGS

    return any(s.name == setting for s in KNOWN_SETTINGS)


@dataclass
class Server:
    """A running gunicorn arbiter and what we know about it."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0
    seen_workers: set[int] = field(default_factory=set)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> set[int]:
        """Every worker the arbiter has booted so far (from its log)."""
        pids = {int(p) for p in re.findall(r"Booting worker with pid: (\d+)", self.log())}
        self.seen_workers |= pids
        return pids

    def get(self, path: str, timeout: float = 15.0) -> tuple[int, str, float]:
        """(status, body, seconds) of one GET on a new connection."""
        start = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read().decode()
            return resp.status, body, time.monotonic() - start
        finally:
            conn.close()


def _alive(pid: int) -> bool:
    """Is ``pid`` a live (not zombie) process that is still a gunicorn of ours?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z" and b"gunicorn" in cmdline


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    """Wait until none of ``pids`` is alive; return those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        left = {pid for pid in pids if _alive(pid)}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


@pytest.fixture
def start_gunicorn(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``start_gunicorn("-w", "2", ...)`` -> a `Server` that answers; stopped at teardown."""
    servers: list[Server] = []

    def start(*args: str) -> Server:
        log_path = tmp_path / f"gunicorn-{len(servers)}.log"
        env = dict(os.environ)
        env.pop("GREENSCHED_PREEMPT", None)
        env.pop("GREENSCHED_SLICE_MS", None)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable, "-m", "gunicorn", "-k", WORKER, "--bind", "127.0.0.1:0",
               "--chdir", str(APP_DIR), "--access-logfile", "-", "--graceful-timeout", "10"]
        if _gunicorn_supports("control_socket_disable"):
            cmd.append("--no-control-socket")  # gunicorn 25+: no shared ~/.gunicorn socket
        cmd += [*args, "wsgi_app:app"]
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                    cwd=str(REPO), start_new_session=True)
        server = Server(proc, log_path)
        servers.append(server)
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while not server.port:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start (exit {proc.returncode}):\n{server.log()}")
            match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", server.log())
            if match:
                server.port = int(match.group(1))
            else:
                time.sleep(0.05)
        status, _, _ = server.get("/", timeout=BOOT_TIMEOUT_S)  # waits for a worker to boot
        assert status == 200, server.log()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.worker_pids()
            if server.proc.poll() is None:
                server.proc.send_signal(signal.SIGTERM)
                try:
                    server.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(server.proc.pid, signal.SIGKILL)
                    server.proc.wait(timeout=5)
            for pid in _wait_gone(server.seen_workers, 5.0):
                os.kill(pid, signal.SIGKILL)


def _concurrently(server: Server, paths: list[str]) -> tuple[list[tuple[int, str, float]], float]:
    """GET every path at once, one OS thread each; (results in order, wall seconds)."""
    results: list[tuple[int, str, float] | None] = [None] * len(paths)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(paths) + 1)

    def client(i: int, path: str) -> None:
        barrier.wait()
        try:
            results[i] = server.get(path, timeout=30)
        except BaseException as exc:  # reported below, with the server's log
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i, p), daemon=True) for i, p in enumerate(paths)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.monotonic()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - start
    assert not errors, f"{len(errors)} request(s) failed, e.g. {errors[0]!r}\n{server.log()[-3000:]}"
    assert all(r is not None for r in results), "a client thread did not finish"
    return [r for r in results if r is not None], elapsed


def test_one_worker_serves_200_concurrent_sleeping_requests(start_gunicorn: Callable[..., Server]) -> None:
    """200 requests whose handler does a plain time.sleep(0.5): all at once, in one worker."""
    server = start_gunicorn("-w", "1")
    results, elapsed = _concurrently(server, ["/sleep?s=0.5"] * 200)
    assert all(status == 200 for status, _, _ in results)
    pids = {body.split()[0] for _, body, _ in results}
    assert len(pids) == 1, pids
    assert all(body.endswith("slept=0.5\n") for _, body, _ in results)
    assert elapsed < 2.0, f"200 concurrent 0.5 s requests took {elapsed:.2f} s"
    # The access log: each line is written just after its response was sent.
    deadline = time.monotonic() + 5
    while server.log().count('"GET /sleep?s=0.5 HTTP/1.1" 200') < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.log().count('"GET /sleep?s=0.5 HTTP/1.1" 200') == 200


def test_keep_alive_connection_is_reused(start_gunicorn: Callable[..., Server]) -> None:
    server = start_gunicorn("-w", "1")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        socks = []
        for _ in range(3):
            conn.request("GET", "/pid")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read().startswith(b"pid=")
            assert (resp.getheader("Connection") or "").lower() != "close"
            socks.append(conn.sock)
        assert socks[0] is not None and socks[0] is socks[1] is socks[2]
    finally:
        conn.close()


def _start_spin(server: Server, seconds: float) -> tuple[socket.socket, bytes]:
    """Send GET /spin; return (socket, what was read) once the app says it began spinning."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(f"GET /spin?s={seconds} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while b"spin-started" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"the spin request was cut off: {data!r}"
        data += chunk
    return sock, data


def _finish_spin(spin: tuple[socket.socket, bytes]) -> str:
    """Read the spin request's answer to the end."""
    sock, data = spin
    with sock:
        while chunk := sock.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data
    return data.decode()


def test_a_cpu_bound_handler_does_not_stall_the_others(start_gunicorn: Callable[..., Server]) -> None:
    """While one request spins on the CPU for 2 s, quick ones in the same worker are answered."""
    server = start_gunicorn("-w", "1")
    status, body, _ = server.get("/pid")
    spinner = _start_spin(server, 2.0)
    started = time.monotonic()
    latencies = []
    for _ in range(5):
        status, quick_body, latency = server.get("/pid")
        assert status == 200 and quick_body == body  # the same worker answered
        latencies.append(latency)
    assert time.monotonic() - started < 1.5, "the quick requests should be done well before the spin"
    text = _finish_spin(spinner)
    assert time.monotonic() - started >= 1.5, "the spinner ended too early to prove anything"
    assert "spun " + body.strip() in text
    assert max(latencies) < 0.5, f"quick requests beside a spinning handler took {latencies}"


def test_sigterm_lets_requests_in_flight_finish(start_gunicorn: Callable[..., Server]) -> None:
    """SIGTERM to the arbiter: the 1 s requests in flight complete, then every process exits."""
    server = start_gunicorn("-w", "1")
    results: list[tuple[int, str, float]] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            results.append(server.get("/sleep?s=1", timeout=30))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(20)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while server.get("/inflight")[1].strip() != "20":
        assert time.monotonic() < deadline, "the 20 requests never were in flight together"
        time.sleep(0.02)
    workers = server.worker_pids()
    server.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(30)
    assert not errors, f"requests were cut off: {errors[:3]}\n{server.log()[-3000:]}"
    assert len(results) == 20 and all(s == 200 and b.endswith("slept=1.0\n") for s, b, _ in results)
    assert server.proc.wait(timeout=15) == 0, server.log()[-3000:]
    assert not _wait_gone(workers, 5.0), "a worker outlived the arbiter"
    assert "Worker graceful timeout" not in server.log()


def test_sigquit_is_a_quick_shutdown(start_gunicorn: Callable[..., Server]) -> None:
    """SIGQUIT (like Ctrl-C's SIGINT) does not wait for the 5 s requests in flight."""
    server = start_gunicorn("-w", "1")
    threads = [threading.Thread(target=lambda: _ignore_errors(server.get, "/sleep?s=5"), daemon=True)
               for _ in range(5)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while server.get("/inflight")[1].strip() != "5":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    workers = server.worker_pids()
    started = time.monotonic()
    server.proc.send_signal(signal.SIGQUIT)
    server.proc.wait(timeout=15)
    assert not _wait_gone(workers, 5.0)
    assert time.monotonic() - started < 3.0, "a quick shutdown waited for the requests"
    assert "Traceback" not in server.log(), server.log()[-3000:]


def _ignore_errors(fn: Callable[..., object], *args: object) -> None:
    try:
        fn(*args)
    except (OSError, http.client.HTTPException):
        pass


def test_two_workers_share_the_load(start_gunicorn: Callable[..., Server]) -> None:
    """With -w 2, concurrent slow requests are served by both worker processes."""
    server = start_gunicorn("-w", "2")
    pids: set[str] = set()
    for _ in range(5):  # the second worker may still be booting during the first round
        results, _ = _concurrently(server, ["/sleep?s=0.3"] * 40)
        assert all(status == 200 for status, _, _ in results)
        pids |= {body.split()[0] for _, body, _ in results}
        if len(pids) == 2:
            break
    assert len(pids) == 2, f"only {pids} served; log:\n{server.log()[-3000:]}"
    assert {f"pid={p}" for p in server.worker_pids()} >= pids


def test_max_requests_restarts_the_worker(start_gunicorn: Callable[..., Server]) -> None:
    """--max-requests 5: the worker exits after 5 requests; no request is lost meanwhile."""
    server = start_gunicorn("-w", "1", "--max-requests", "5", "--max-requests-jitter", "0")
    bodies = [server.get("/pid")[1] for _ in range(14)]  # the readiness GET was the 1st
    first = bodies[0]
    assert bodies[:4] == [first] * 4
    assert len(set(bodies)) >= 2, bodies
    assert "Autorestarting worker after current request" in server.log()
    old_pid = int(first.split("=")[1])
    assert not _wait_gone({old_pid}, 5.0), "the retired worker did not exit"


def test_heartbeat_survives_a_handler_spinning_past_the_timeout(start_gunicorn: Callable[...,
                                                                                         Server]) -> None:
    """--timeout 2 and a 4 s CPU-bound handler: preemption keeps the heartbeat going."""
    server = start_gunicorn("-w", "1", "--timeout", "2")
    _, before, _ = server.get("/pid")
    text = _finish_spin(_start_spin(server, 4.0))
    assert "spun " + before.strip() in text
    _, after, _ = server.get("/pid")
    assert after == before, "the worker was replaced"
    assert "WORKER TIMEOUT" not in server.log()
