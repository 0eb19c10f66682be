"""A plain-stdlib HTTP(S) server for tests: ``python slow_http.py DELAY [CERT KEY]``.

It prints its port. Each GET waits DELAY seconds (on its own OS thread, so answers
overlap) and then answers with the request path as the body. With a certificate
and key it serves HTTPS. It serves until stdin closes, so it dies with the test
that started it.
"""

from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    delay = 0.0

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
        time.sleep(self.delay)
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    request_queue_size = 512  # a hundred clients connect at once
    daemon_threads = True


def main() -> None:
    Handler.delay = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    server = Server(("127.0.0.1", 0), Handler)
    if len(sys.argv) > 3:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # until the test closes our stdin
    server.shutdown()


if __name__ == "__main__":
    main()
