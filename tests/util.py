"""Helpers shared by the tests: run a snippet in a fresh interpreter."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import greensched
from greensched import GreenThread

REPO = Path(__file__).resolve().parent.parent


def run_python(
    code: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter with the repo importable; capture its output."""
    full_env = dict(os.environ)
    full_env.pop("GREENSCHED_PREEMPT", None)
    full_env.pop("GREENSCHED_SLICE_MS", None)
    full_env.pop("GREENSCHED_GRANULARITY_MS", None)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(REPO),
    )


def fill(sock: socket.socket) -> None:
    """Fill ``sock``'s send buffer until it is no longer writable."""
    sock.setblocking(False)
    try:
        while True:
            sock.send(b"x" * 65536)
    except BlockingIOError:
        pass


def drain(sock: socket.socket) -> None:
    """Read and drop whatever ``sock`` has buffered."""
    sock.setblocking(False)
    try:
        while sock.recv(1 << 20):
            pass
    except BlockingIOError:
        pass


def parked(thread: GreenThread) -> None:
    """Let ``thread`` run until it parks: yield (no sleeping) until its state says so."""
    for _ in range(100):
        if thread.state == "PARKED":
            return
        greensched.sleep(0)
    raise AssertionError(f"{thread} never parked (state {thread.state})")


@contextmanager
def slow_http_server(delay: float, cert: Path | None = None, key: Path | None = None) -> Iterator[int]:
    """tests/servers/slow_http.py in a subprocess, answering each GET after ``delay`` s.

    Yields its port; HTTPS with ``cert`` and ``key``. It stops when its stdin closes.
    """
    tls = [str(cert), str(key)] if cert is not None and key is not None else []
    server = REPO / "tests" / "servers" / "slow_http.py"
    proc = subprocess.Popen([sys.executable, str(server), str(delay), *tls],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
