"""Helpers of the reliability tests: fresh interpreters that run greensched for real.

Each load test runs its green code in a new interpreter (its own fd limit, its own
memory figures, nothing left behind in the pytest process). A test reads the child's
last stdout line as a JSON report and asserts on it; the figures are printed too
(``pytest -s``) for the release notes.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from tests.util import REPO

#: Prepended to every child: raise the fd limit as far as the hard limit allows.
RAISE_NOFILE = """
import resource as _resource
_soft, _hard = _resource.getrlimit(_resource.RLIMIT_NOFILE)
_want = {want}
if _soft < _want:
    _resource.setrlimit(_resource.RLIMIT_NOFILE, (min(_want, _hard), _hard))
"""


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("GREENSCHED_PREEMPT", None)
    env.pop("GREENSCHED_SLICE_MS", None)
    env.pop("GREENSCHED_GRANULARITY_MS", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def need_fds(n: int) -> None:
    """Skip unless this process may open ``n`` fds (raising the soft limit is allowed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < n:
        pytest.skip(f"needs {n} open files per process, but the hard RLIMIT_NOFILE is {hard} "
                    f"(raise it with `ulimit -Hn {n}` as root)")


def script(code: str, fds: int = 0) -> str:
    prefix = RAISE_NOFILE.format(want=fds) if fds else ""
    return prefix + textwrap.dedent(code)


def start(code: str, fds: int = 0, env: dict[str, str] | None = None,
          stdin: Any = subprocess.PIPE) -> subprocess.Popen[str]:
    """Start ``code`` in a fresh interpreter; stdout and stderr are pipes."""
    return subprocess.Popen(
        [sys.executable, "-c", script(code, fds)], env=child_env(env), cwd=str(REPO),
        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` if it still runs and reap it (for finally blocks)."""
    if proc.poll() is None:
        proc.kill()
    try:
        proc.communicate(timeout=10)
    except (subprocess.TimeoutExpired, ValueError):
        pass


def report(stdout: str) -> dict[str, Any]:
    """The JSON report a child printed as its last line."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, f"the child printed no report: {stdout[-2000:]!r}"
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def show(title: str, figures: dict[str, Any]) -> None:
    """Print a test's figures (visible with ``pytest -s``)."""
    print(f"\n[reliability] {title}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


#: A green echo server in its own interpreter: prints ``port N``, echoes every
#: connection until the peer shuts down its side, and when its stdin closes prints a
#: JSON report (connections, bytes, the most connections open at once).
ECHO_SERVER = """
import json, sys, time
import greensched
from greensched.net import socket as gsocket

stats = {"connections": 0, "bytes": 0, "max_open": 0, "errors": []}
open_now = 0

def echo(conn):
    global open_now
    open_now += 1
    stats["max_open"] = max(stats["max_open"], open_now)
    try:
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
                stats["bytes"] += len(data)
    except Exception as exc:
        stats["errors"].append(repr(exc))
    finally:
        open_now -= 1

listener = gsocket.create_server(("127.0.0.1", 0), backlog=4096)

def serve():
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        stats["connections"] += 1
        greensched.spawn(echo, conn)

acceptor = greensched.spawn(serve)
print("port", listener.getsockname()[1], flush=True)
# stdin is a green-readable pipe: EOF means the test is done with us.
greensched.wait_readable(sys.stdin.fileno())
sys.stdin.read()
listener.close()
acceptor.join()
deadline = time.monotonic() + 30
while open_now and time.monotonic() < deadline:
    greensched.sleep(0.01)
print(json.dumps(stats), flush=True)
"""


def start_echo_server(fds: int) -> tuple[subprocess.Popen[str], int]:
    proc = start(ECHO_SERVER, fds=fds)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("port "):
        stop(proc)
        errors = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"echo server did not start: {line!r} {errors}")
    return proc, int(line.split()[1])


def finish_echo_server(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(input="", timeout=60)
    assert proc.returncode == 0, err[-3000:]
    return report(out)


def run_child(code: str, fds: int = 0, env: dict[str, str] | None = None,
              timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``code`` to completion in a fresh interpreter; capture its output."""
    return subprocess.run(
        [sys.executable, "-c", script(code, fds)], env=child_env(env), cwd=str(REPO),
        capture_output=True, text=True, timeout=timeout,
    )
