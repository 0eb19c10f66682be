"""crawler: a concurrent web crawler written the threaded way, run on green threads.

This is the crawler you would write with ``requests``, ``threading`` and ``queue``
and no framework: a queue of URLs to visit, a pool of worker threads that each
fetch a page, find its links and queue the new ones, and a main thread that waits
for the queue to drain. With ``greensched.patch_all()`` at the top, the same code
runs the workers as green threads on one OS thread: every ``session.get()`` parks
its worker until the answer arrives, and the others fetch meanwhile. Apart from
that one call, nothing in the crawler knows about greensched.

To need no network, it starts its own small site on 127.0.0.1 (a free port): N
pages linked to each other, each taking a few milliseconds to answer, so a serial
crawl would take N times that. It crawls every page from the first one, checks
that each page it got is the one it asked for, and prints progress, the time
taken and a ``summary: key=value ...`` line (read by tests/test_examples.py).

Run it (needs ``requests``: ``pip install requests``, or ``pip install -e '.[test]'``)::

    python examples/crawler.py                          # 1000 pages, 100 workers
    python examples/crawler.py --pages 2000 --workers 200 --latency-ms 50
"""

from __future__ import annotations

import greensched

greensched.patch_all()  # first, before requests (and urllib3) are imported

import argparse  # noqa: E402 - after patch_all() on purpose
import queue  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from html.parser import HTMLParser  # noqa: E402
from time import monotonic  # noqa: E402
from urllib.parse import urljoin, urlsplit  # noqa: E402

from _servers import QuietHandler, ensure_open_files, serve  # noqa: E402

try:
    import requests  # noqa: E402
except ImportError:
    sys.exit("crawler.py needs the 'requests' package: pip install requests "
             "(or, in this repository, pip install -e '.[test]')")


PROGRESS_EVERY_S = 1.0


# --- the site ------------------------------------------------------------------------


def page_links(page: int, pages: int) -> list[int]:
    """The pages that ``page`` links to: the next one (so all are reachable) and a few more."""
    return sorted({(page + 1) % pages, (page * 7 + 3) % pages, (page * 13 + 5) % pages,
                   page // 2})


def page_html(page: int, pages: int) -> str:
    links = "\n".join(f'<li><a href="/page/{n}">page {n}</a></li>' for n in page_links(page, pages))
    return (f"<!doctype html>\n<html><head><title>page {page}</title></head>\n"
            f'<body><h1 id="page-{page}">page {page}</h1>\n<ul>\n{links}\n</ul></body></html>\n')


class SiteHandler(QuietHandler):
    """``/page/N``: pages linked to each other; each takes ``latency`` s to answer."""

    pages = 1000
    latency = 0.02

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        time.sleep(self.latency)  # a slow backend; green, so the server answers others meanwhile
        page = self.page_number()
        if page is None:
            self.send_body(b"not found\n", status=404)
            return
        self.send_body(page_html(page, self.pages).encode(), "text/html; charset=utf-8")

    def page_number(self) -> int | None:
        prefix = "/page/"
        number = self.path[len(prefix):]
        if self.path.startswith(prefix) and number.isdigit() and int(number) < self.pages:
            return int(number)
        return None


# --- the crawler: plain threads, a queue, requests -----------------------------------


class LinkParser(HTMLParser):
    """Collects the ``href`` of every ``<a>`` in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.extend(value for name, value in attrs if name == "href" and value)


def find_links(base_url: str, html: str) -> list[str]:
    """The absolute URLs of the links in ``html``, on the same site as ``base_url``."""
    parser = LinkParser()
    parser.feed(html)
    site = urlsplit(base_url).netloc
    urls = (urljoin(base_url, link) for link in parser.links)
    return [url for url in urls if urlsplit(url).netloc == site]


class Crawl:
    """The shared state of one crawl: the queue, what was seen, what was fetched."""

    def __init__(self, start_url: str) -> None:
        self.todo: queue.Queue[str | None] = queue.Queue()  # None tells a worker to stop
        self.lock = threading.Lock()
        self.seen = {start_url}
        self.fetched: dict[str, int] = {}  # URL -> size of the page
        self.errors: list[str] = []
        self.todo.put(start_url)

    def add_links(self, urls: list[str]) -> None:
        with self.lock:
            new = [url for url in urls if url not in self.seen]
            self.seen.update(new)
        for url in new:
            self.todo.put(url)


def worker(crawl: Crawl) -> None:
    """Fetch URLs from the queue until told to stop."""
    with requests.Session() as session:
        while (url := crawl.todo.get()) is not None:
            try:
                fetch(crawl, session, url)
            except Exception as exc:  # report it, crawl the rest
                with crawl.lock:
                    crawl.errors.append(f"{url}: {exc!r}")
            finally:
                crawl.todo.task_done()


def fetch(crawl: Crawl, session: requests.Session, url: str) -> None:
    response = session.get(url, timeout=30)
    response.raise_for_status()
    expected = urlsplit(url).path.rsplit("/", 1)[-1]
    if f'id="page-{expected}"' not in response.text:
        raise RuntimeError(f"got the wrong page for {url}")
    with crawl.lock:
        crawl.fetched[url] = len(response.content)
    crawl.add_links(find_links(url, response.text))


def report_progress(crawl: Crawl, start: float, stop: threading.Event) -> None:
    """Print the pages fetched so far about once a second, until ``stop`` is set."""
    while not stop.wait(PROGRESS_EVERY_S):
        print(f"[{monotonic() - start:5.1f}s] {len(crawl.fetched):,} pages fetched, "
              f"{crawl.todo.qsize():,} queued", flush=True)


def crawl_site(start_url: str, workers: int) -> tuple[Crawl, float]:
    """Crawl everything reachable from ``start_url``; return the crawl and its duration."""
    crawl = Crawl(start_url)
    start = monotonic()
    threads = [threading.Thread(target=worker, args=(crawl,), name=f"worker-{n}")
               for n in range(workers)]
    for thread in threads:
        thread.start()
    stop = threading.Event()
    reporter = threading.Thread(target=report_progress, args=(crawl, start, stop), name="progress")
    reporter.start()
    crawl.todo.join()  # every queued URL fetched, and every link found queued
    elapsed = monotonic() - start
    stop.set()
    for _ in threads:
        crawl.todo.put(None)
    for thread in threads:
        thread.join()
    reporter.join()
    return crawl, elapsed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_open_files(4 * args.workers + 100, f"--workers {args.workers}")
    SiteHandler.pages, SiteHandler.latency = args.pages, args.latency_ms / 1000.0
    print(f"crawler: {args.pages} pages, {args.workers} workers, "
          f"{args.latency_ms:g} ms per page on the server", flush=True)
    with serve(SiteHandler) as addr:
        crawl, elapsed = crawl_site(f"http://{addr}/page/0", args.workers)
    fetched = len(crawl.fetched)
    for error in crawl.errors[:5]:
        print(f"error: {error}", file=sys.stderr)
    serial = fetched * args.latency_ms / 1000.0
    print(f"\nfetched {fetched} of {args.pages} pages ({sum(crawl.fetched.values()):,} bytes) "
          f"in {elapsed:.2f} s with {args.workers} workers; errors: {len(crawl.errors)}")
    print(f"one page at a time, the server's {args.latency_ms:g} ms per page alone would "
          f"take {serial:.1f} s")
    fields = {
        "pages": fetched,
        "expected": args.pages,
        "errors": len(crawl.errors),
        "workers": args.workers,
        "seconds": f"{elapsed:.3f}",
        "pages_per_s": f"{fetched / max(elapsed, 1e-9):.1f}",
        "bytes": sum(crawl.fetched.values()),
        "threads_left": greensched.stats()["threads"] - 1,
    }
    print("summary: " + " ".join(f"{k}={v}" for k, v in fields.items()), flush=True)
    return 0 if fetched == args.pages and not crawl.errors else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Crawl a small local site with requests and a pool of threads "
                    "(green after greensched.patch_all()); print progress and a summary.",
    )
    parser.add_argument("--pages", type=int, default=1000,
                        help="how many pages the local site has (default: 1000)")
    parser.add_argument("--workers", type=int, default=100,
                        help="how many worker threads fetch pages (default: 100)")
    parser.add_argument("--latency-ms", type=float, default=20.0,
                        help="how long the server takes per page, in ms (default: 20)")
    args = parser.parse_args(argv)
    if args.pages < 1 or args.workers < 1:
        parser.error("--pages and --workers must be at least 1")
    if args.latency_ms < 0:
        parser.error("--latency-ms must not be negative")
    return args


if __name__ == "__main__":
    sys.exit(main())
