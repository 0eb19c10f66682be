"""A throwaway nginx for the HTTP workloads: own config, temp dir, free loopback port.

`Nginx` writes a config into a fresh temporary directory (one worker process,
access log off, keep-alive on, a small static file), starts nginx in the
foreground (``daemon off``) as a child process on a free port of 127.0.0.1, waits
until the file is served, and on `stop` terminates it by its pid and removes the
directory. Debian's package: ``apt-get install -y nginx``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

INSTALL_HINT = "install it with `apt-get install -y nginx` (Debian/Ubuntu)"

_CONFIG = """\
worker_processes {workers};
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    sendfile on;
    tcp_nodelay on;
    default_type text/plain;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root}/www;
        location / {{ }}
    }}
}}
"""


def find_nginx() -> str | None:
    """The nginx binary (``PATH``, then ``/usr/sbin``), or None."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def nginx_version(binary: str) -> str:
    """``nginx -v``'s answer, e.g. ``nginx/1.22.1``."""
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10)
    return (out.stderr or out.stdout).strip().removeprefix("nginx version: ")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nginx:
    """A running nginx serving ``path`` with ``body``; use as a context manager."""

    def __init__(self, binary: str, path: str, body: bytes, workers: int = 1) -> None:
        self.binary = binary
        self.path = path
        self.body = body
        self.workers = workers
        self.root: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        """Start nginx; returns its base URL. RuntimeError with its error log if it fails."""
        self.root = Path(tempfile.mkdtemp(prefix="greensched-bench-nginx-"))
        os.chmod(self.root, 0o755)  # nginx workers may run as another user (nobody)
        (self.root / "www").mkdir(mode=0o755)
        (self.root / "tmp").mkdir(mode=0o755)
        (self.root / "www" / self.path.lstrip("/")).write_bytes(self.body)
        port = _free_port()
        conf = self.root / "nginx.conf"
        conf.write_text(_CONFIG.format(workers=self.workers, root=self.root, port=port))
        self.process = subprocess.Popen(
            [self.binary, "-p", str(self.root), "-e", str(self.root / "error.log"),
             "-c", str(conf)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.url = f"http://127.0.0.1:{port}"
        self._wait_ready()
        return self.url

    def _wait_ready(self, timeout: float = 10.0) -> None:
        assert self.process is not None and self.root is not None
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with opener.open(self.url + self.path, timeout=1) as response:
                    if response.read() == self.body:
                        return
                    last_error = "served the wrong content"
            except OSError as exc:
                last_error = str(exc)
            time.sleep(0.05)
        log = self._error_log()
        self.stop()
        raise RuntimeError(f"nginx did not start serving {self.path}: {last_error}\n{log}")

    def _error_log(self) -> str:
        parts = []
        if self.process is not None and self.process.stderr is not None and \
                self.process.poll() is not None:
            parts.append(self.process.stderr.read().decode(errors="replace"))
        if self.root is not None and (self.root / "error.log").exists():
            parts.append((self.root / "error.log").read_text(errors="replace"))
        return "\n".join(p for p in parts if p.strip())

    def stop(self) -> None:
        """Stop nginx by its pid (SIGTERM, then SIGKILL) and remove the temp dir."""
        if self.process is not None:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.kill(self.process.pid, signal.SIGKILL)
                    self.process.wait()
            if self.process.stderr is not None:
                self.process.stderr.close()
            self.process = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> Nginx:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
