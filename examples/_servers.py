"""Small local HTTP servers for the examples, and room for many connections.

The examples start their own servers on ``127.0.0.1`` (a free port each), so that
they need nothing but ``pip install -e .``. A server here is the stdlib's
``http.server.ThreadingHTTPServer`` with one change: it starts the green thread for
each connection with ``greensched.spawn``. After ``greensched.patch_all()`` the
stock server is green too, but ``Thread.start()`` waits until the new thread has
run, so its accept loop takes one connection per pass of the scheduler; next to a
CPU hog (a slice of 10 ms per pass) that is only a few dozen connections a second.
``spawn`` returns at once. Use it as a context manager::

    with serve(MyHandler) as addr:      # "127.0.0.1:PORT"
        ...                             # the server answers while this block runs

On the way out it stops serving, waits briefly for the connections still open to
end, then ends the ones left, so no green thread outlives the block.

`ensure_open_files` raises the open-file limit for examples that hold many
connections at once: both ends of each loopback connection are file descriptors
of this one process.
"""

from __future__ import annotations

import http.server
import resource
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import greensched

#: How often serve_forever() looks for a shutdown request, in seconds.
POLL_INTERVAL_S = 0.05
#: How long `serve` waits, at the end, for clients to close their connections.
CLOSE_GRACE_S = 2.0


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """An HTTP/1.1 (keep-alive) handler that logs nothing and sends bodies easily."""

    protocol_version = "HTTP/1.1"

    def send_body(self, body: bytes, content_type: str = "text/plain", status: int = 200) -> None:
        """Answer with ``body`` and the headers a keep-alive client needs."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
        pass  # thousands of requests a second: no access log on stderr


class Server(http.server.ThreadingHTTPServer):
    """``ThreadingHTTPServer`` that spawns a green thread per connection, without waiting."""

    request_queue_size = 1024  # hundreds of clients connect at the same moment

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.connections: set[greensched.GreenThread] = set()
        super().__init__(("127.0.0.1", 0), handler)

    def process_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        self.connections.add(greensched.spawn(self._serve_connection, request, client_address))

    def _serve_connection(self, request: socket.socket, client_address: tuple[str, int]) -> None:
        try:
            self.process_request_thread(request, client_address)  # the stdlib's thread body
        finally:
            self.connections.discard(greensched.current_thread())

    def close_connections(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for open connections to end; end the rest."""
        for thread in list(self.connections):
            thread.join(grace)
        for thread in list(self.connections):
            thread.kill(timeout=grace)


@contextmanager
def serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free port of 127.0.0.1; yield ``"127.0.0.1:PORT"``."""
    server = Server(handler)
    host, port = server.server_address[:2]
    thread = threading.Thread(target=server.serve_forever, args=(POLL_INTERVAL_S,),
                              name=f"http-server-{port}")
    thread.start()
    try:
        yield f"{host}:{port}"
    finally:
        server.shutdown()  # serve_forever() returns within POLL_INTERVAL_S
        thread.join()
        server.server_close()
        server.close_connections(CLOSE_GRACE_S)


def ensure_open_files(needed: int, what: str) -> None:
    """Make room for ``needed`` open files, raising the soft limit up to the hard one.

    Raises `SystemExit` with the numbers and the fix when the hard limit is too low.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        raise SystemExit(
            f"{what} needs about {needed} open files, but this process may open at most "
            f"{hard} (the hard limit of RLIMIT_NOFILE). Ask for fewer, or raise the limit "
            f"(e.g. `ulimit -Hn {needed}` as root, or LimitNOFILE= in systemd)."
        )
