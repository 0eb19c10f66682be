"""A small WSGI app for tests/test_gunicorn.py, served by gunicorn's GreenWorker.

Plain blocking code, as an application would be written for the sync worker:

* ``/`` and ``/pid``: ``pid=<worker pid>``;
* ``/sleep?s=0.5``: ``time.sleep(s)`` (green once the worker patched), then
  ``pid=<pid> slept=<s>``;
* ``/spin?s=2``: sends ``spin-started`` at once, then spins on the CPU for ``s``
  seconds (nothing but arithmetic and ``time.monotonic()``), then ``spun pid=<pid>``;
* ``/inflight``: how many ``/sleep`` requests this worker is serving right now.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import parse_qs

StartResponse = Callable[..., object]

#: The /sleep requests being served (a set: add and discard are atomic).
_sleeping: set[int] = set()


def _seconds(environ: dict[str, object], default: float) -> float:
    query = parse_qs(str(environ.get("QUERY_STRING", "")))
    return float(query.get("s", [default])[0])


def _spin(seconds: float) -> Iterator[bytes]:
    yield b"spin-started\n"
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    yield f"spun pid={os.getpid()} loops={n}\n".encode()


def app(environ: dict[str, object], start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/spin":
        start_response("200 OK", [("Content-Type", "text/plain")])  # chunked: streamed
        return _spin(_seconds(environ, 2.0))
    if path == "/sleep":
        seconds = _seconds(environ, 0.5)
        token = id(environ)
        _sleeping.add(token)
        try:
            time.sleep(seconds)
        finally:
            _sleeping.discard(token)
        body = f"pid={os.getpid()} slept={seconds}\n".encode()
    elif path == "/inflight":
        body = f"{len(_sleeping)}\n".encode()
    elif path in ("/", "/pid"):
        body = f"pid={os.getpid()}\n".encode()
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return [b""]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
