"""HTTP client fan-out: 100 threads fetch a small static file from a local nginx.

Three workloads share this code and differ only in the client library:

* ``http_client``: one ``http.client.HTTPConnection`` per thread, kept alive;
* ``http_urllib``: ``urllib.request`` through an opener without proxies (a new
  connection per request: urllib sends ``Connection: close``);
* ``http_requests``: one ``requests.Session`` per thread (keep-alive), with
  ``trust_env`` off so no proxy or netrc is consulted.

``concurrency`` threads each make ``requests // concurrency`` GETs; every response
must be a 200 whose body equals the served file. The figure is requests per
second. There is no HTTP client in asyncio's stdlib, so asyncio and uvloop are
not run ("—").
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable
from http.client import HTTPConnection
from time import perf_counter
from urllib.parse import urlsplit

from ._spec import Context, Figures, Metric, Target, Workload

#: The file nginx serves (bench/nginx.py writes it); each body is compared with it.
PATH = "/small.txt"
BODY = (b"greensched bench: a small static file served by nginx.\n" * 10)[:512]

#: A client's loop: (base URL, number of requests, errors list) -> None.
Fetcher = Callable[[str, int, list[str]], None]


def _check(status: int, body: bytes, errors: list[str]) -> bool:
    if status != 200 or body != BODY:
        errors.append(f"bad response: status {status}, {len(body)} bytes")
        return False
    return True


def fetch_http_client(base_url: str, count: int, errors: list[str]) -> None:
    """``http.client`` with one keep-alive connection."""
    parts = urlsplit(base_url)
    conn = HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    try:
        for _ in range(count):
            conn.request("GET", PATH)
            response = conn.getresponse()
            if not _check(response.status, response.read(), errors):
                return
    finally:
        conn.close()


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch_urllib(base_url: str, count: int, errors: list[str]) -> None:
    """``urllib.request``: a new connection per request."""
    url = base_url + PATH
    for _ in range(count):
        with _OPENER.open(url) as response:
            if not _check(response.status, response.read(), errors):
                return


def fetch_requests(base_url: str, count: int, errors: list[str]) -> None:
    """``requests.Session``: keep-alive, no proxies from the environment."""
    import requests  # imported after the runtime patched the stdlib

    url = base_url + PATH
    with requests.Session() as session:
        session.trust_env = False
        for _ in range(count):
            response = session.get(url)
            if not _check(response.status_code, response.content, errors):
                return


def _guarded(fetch: Fetcher, base_url: str, count: int, errors: list[str]) -> None:
    try:
        fetch(base_url, count, errors)
    except Exception as exc:  # reported by the main thread, which fails the run
        errors.append(f"{type(exc).__name__}: {exc}")


def _fanout(fetch: Fetcher, base_url: str, concurrency: int, requests: int) -> float:
    """``requests`` GETs over ``concurrency`` threads; returns the elapsed seconds."""
    errors: list[str] = []
    per_thread = requests // concurrency
    threads = [threading.Thread(target=_guarded, args=(fetch, base_url, per_thread, errors))
               for _ in range(concurrency)]
    start = perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = perf_counter() - start
    if errors:
        raise AssertionError(f"{len(errors)} request(s) failed; first: {errors[0]}")
    return elapsed


def _runner(fetch: Fetcher) -> Callable[..., Figures]:
    def run_threaded(ctx: Context, concurrency: int, requests: int, warmup: int) -> Figures:
        if ctx.nginx_url is None:
            raise RuntimeError("no nginx URL given (BENCH_NGINX_URL): run through bench/run.py")
        _fanout(fetch, ctx.nginx_url, concurrency, warmup)
        elapsed = _fanout(fetch, ctx.nginx_url, concurrency, requests)
        return {"rate": requests // concurrency * concurrency / elapsed}

    run_threaded.__doc__ = f"HTTP fan-out with {fetch.__name__}, for every thread-like runtime."
    return run_threaded


def _workload(name: str, title: str, fetch: Fetcher, requests: int, quick: int) -> Workload:
    return Workload(
        name=name,
        title=title,
        metrics=(Metric("rate", "requests/s", "requests/s", higher_is_better=True,
                        target=Target("ratio", ">=", 1.0), primary=True),),
        run_threaded=_runner(fetch),
        run_async=None,
        full={"concurrency": 100, "requests": requests, "warmup": 200},
        quick={"concurrency": 100, "requests": quick, "warmup": 100},
        needs_nginx=True,
    )


WORKLOADS = [
    _workload("http_client", "HTTP fan-out c=100, http.client keep-alive",
              fetch_http_client, 20_000, 2_000),
    _workload("http_urllib", "HTTP fan-out c=100, urllib.request (new connection each)",
              fetch_urllib, 5_000, 1_000),
    _workload("http_requests", "HTTP fan-out c=100, requests.Session keep-alive",
              fetch_requests, 6_000, 1_000),
]
