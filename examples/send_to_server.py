"""send_to_server: plain blocking code, hundreds of clients, one OS thread, no freeze.

The story
---------
A familiar one from blog posts about async. A client talks to an API server in a
loop: wait a little, send a request, and let the answer say how long to wait
before the next one::

    def send_to_server(addr):
        time_before_next_request = 0
        while True:
            time.sleep(time_before_next_request)
            resp = GET(addr)
            time_before_next_request = parse_response(resp)

Written with ``async``/``await``, two things go wrong as the program grows:

1. **Function colouring.** One day ``parse_response(resp)`` must ask a cache
   server something before it returns. That is a network call, so in async code
   ``parse_response`` must become ``async``, then every function that calls it,
   and every function that calls those: one small change recolours the program.
2. **One blocking call freezes everything.** Somebody writes ``time.sleep(10)``
   instead of ``await asyncio.sleep(10)`` (or calls a library that blocks). The
   event loop is stuck in that call, and every other task waits with it.

Green threads with a timer solve both. With greensched the code stays plain
functions: ``parse_response`` simply makes its extra request, and nobody else
changes. After ``greensched.patch_all()``, ``time.sleep`` and sockets park only the
calling green thread. And a timer (SIGALRM) takes the OS thread back from a green
thread that has had its time slice (10 ms by default) while others wait, whether it
computes without end or sits in a blocking call nobody made green: the others keep
going.

What this demo runs, all in one OS thread
-----------------------------------------
* an API server and a cache server on 127.0.0.1 (free ports), green threads too;
* ``--clients`` green threads (300 by default), each running ``send_to_server``:
  the API answers with a delay of 100-500 ms and an item; ``parse_response`` asks
  the cache server about that item and checks its answer;
* after a short warm-up, two troublemakers: one makes the story's mistake, an
  **unpatched** ``time.sleep(1)`` in a loop (``greensched.monkey.original("time",
  "sleep")``, the C function that blocks the whole OS thread), and one **spins on
  the CPU**. Both stop by themselves at the end of the run.

Once a second it prints the requests answered so far, the rate, and the worst
lateness of the clients' sleeps (how much later than asked a client woke up).
With preemption the clients keep going while the troublemakers run; with
``--no-preempt`` everything stops until they give up at the end: the freeze. At
the end it says how many requests were answered, the rate before and while the
troublemakers ran, the longest time without any answer meanwhile, and how often
the scheduler switched and preempted.

Run it::

    python examples/send_to_server.py                  # 300 clients, 10 s
    python examples/send_to_server.py --no-preempt     # watch it freeze
    python examples/send_to_server.py --clients 1000 --seconds 5

The last line is a machine-readable summary (``summary: key=value ...``) that
tests/test_examples.py reads. The exit status is 0 when every request was answered
correctly, 1 otherwise (130 after Ctrl-C, which stops the run early but still
reports).
"""

from __future__ import annotations

import greensched

greensched.patch_all()  # first, before the modules below create any socket

import argparse  # noqa: E402 - after patch_all() on purpose
import http.client  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from time import monotonic  # noqa: E402

from _servers import QuietHandler, ensure_open_files, serve  # noqa: E402

from greensched.monkey import original  # noqa: E402

#: The API asks clients to wait this long (seconds) before their next request.
MIN_WAIT_S, MAX_WAIT_S = 0.1, 0.5
#: The troublemakers start after this share of the run (at most WARMUP_MAX_S).
WARMUP_SHARE, WARMUP_MAX_S = 0.2, 1.0
#: The blocking mistake sleeps this long per call.
BLOCK_CHUNK_S = 1.0
#: The API's items, and what the cache knows about each.
ITEMS = 1000
PROGRESS_EVERY_S = 1.0

#: The C-level time.sleep that blocks the whole OS thread: the story's mistake.
blocking_sleep = original("time", "sleep")


def item_etag(item: int) -> str:
    """What both servers say about ``item``: the client checks they agree."""
    return f"{item}-{(item * 2_654_435_761) % 4_294_967_296:08x}"


# --- the servers ----------------------------------------------------------------------


class ApiHandler(QuietHandler):
    """``GET /next``: how long to wait before the next request, and an item to check."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        item = random.randrange(ITEMS)
        answer = {"wait": random.uniform(MIN_WAIT_S, MAX_WAIT_S), "item": item,
                  "etag": item_etag(item)}
        self.send_body(json.dumps(answer).encode(), "application/json")


class CacheHandler(QuietHandler):
    """``GET /item/N``: the cache's etag of item N."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        prefix = "/item/"
        if not self.path.startswith(prefix) or not self.path[len(prefix):].isdigit():
            self.send_body(b"no such item\n", status=404)
            return
        self.send_body(item_etag(int(self.path[len(prefix):])).encode())


# --- what the clients report ---------------------------------------------------------


class Scoreboard:
    """Figures the green threads update and the main thread reads.

    ``x += 1`` on an attribute is several bytecodes, and preemption may fall between
    them; the updates shared by all clients run under ``greensched.no_preempt()``
    so none is lost.
    """

    def __init__(self) -> None:
        self.deadline = float("inf")  # when the run is over: everybody checks it
        self.request_timeout = 60.0  # seconds; longer than any stall the demo causes
        self.cache_addr = ""  # "127.0.0.1:PORT" of the cache server
        self.stall_from = float("inf")  # when the troublemakers started
        self.answered = 0
        self.answered_in_stall = 0
        self.last_answer = 0.0  # monotonic() of the latest answer
        self.max_gap = 0.0  # the longest time without an answer while the troublemakers ran
        self.worst_lateness = 0.0  # how late a client's sleep woke up, at worst, before them
        self.worst_lateness_in_stall = 0.0  # ... and while they ran
        self.blocker_sleeps = 0
        self.hog_iterations = 0

    def over(self) -> bool:
        return monotonic() >= self.deadline

    def in_stall(self, when: float) -> bool:
        return self.stall_from <= when < self.deadline

    def woke(self, due: float, now: float) -> None:
        """A client asked to wake up at ``due`` and woke up at ``now``.

        The lateness counts as the troublemakers' once they were running when the client
        woke: a sleep that fell due just before they started and was served just after
        waited for them, not for the warm-up.
        """
        late = max(now - due, 0.0)
        with greensched.no_preempt():
            if now >= self.stall_from:
                self.worst_lateness_in_stall = max(self.worst_lateness_in_stall, late)
            else:
                self.worst_lateness = max(self.worst_lateness, late)

    def answer(self) -> None:
        """A client got its answer (and the cache agreed with it)."""
        with greensched.no_preempt():
            now = monotonic()
            self.answered += 1
            if self.in_stall(now):
                self.answered_in_stall += 1
            self.note_silence_until(now)
            self.last_answer = now

    def note_silence_until(self, now: float) -> None:
        """Track the longest time without an answer, counting only the troublemakers' time."""
        silent_from = max(self.last_answer, self.stall_from)
        silent_to = min(now, self.deadline)
        self.max_gap = max(self.max_gap, silent_to - silent_from)


board = Scoreboard()


# --- the story: plain functions, no async --------------------------------------------


def send_to_server(addr: str) -> None:
    """The story's client loop: wait, ask, and let the answer say how long to wait."""
    time_before_next_request = random.uniform(0.0, MAX_WAIT_S)  # don't all start at once
    conn = http.client.HTTPConnection(addr, timeout=board.request_timeout)
    try:
        while not board.over():
            due = monotonic() + time_before_next_request  # (for the lateness figure)
            time.sleep(time_before_next_request)  # patched: parks this green thread only
            board.woke(due, monotonic())
            if board.over():
                break
            conn.request("GET", "/next")
            resp = conn.getresponse()
            time_before_next_request = parse_response(resp)
            board.answer()
    finally:
        conn.close()


def parse_response(resp: http.client.HTTPResponse) -> float:
    """Read the API's answer, check its item with the cache server, return the wait.

    The cache lookup is another network request. In async code this line would
    make parse_response, send_to_server and all their callers ``async``; here it
    is just a call.
    """
    if resp.status != 200:
        raise RuntimeError(f"API answered {resp.status} {resp.reason}")
    answer = json.loads(resp.read())
    cached = ask_cache(answer["item"])
    if cached != answer["etag"]:
        raise RuntimeError(f"cache says {cached!r} for item {answer['item']}, API {answer['etag']!r}")
    return float(answer["wait"])


def ask_cache(item: int) -> str:
    """One GET to the cache server, on a connection of its own."""
    conn = http.client.HTTPConnection(board.cache_addr, timeout=board.request_timeout)
    try:
        conn.request("GET", f"/item/{item}")
        resp = conn.getresponse()
        body = resp.read().decode()
        if resp.status != 200:
            raise RuntimeError(f"cache answered {resp.status}: {body.strip()}")
        return body
    finally:
        conn.close()


# --- the troublemakers ---------------------------------------------------------------


def blocking_mistake() -> None:
    """The story's mistake: a sleep nobody made green, in a loop, until the end.

    Like ``time.sleep(10)`` in async code, each call holds the only OS thread; it
    sleeps in chunks of BLOCK_CHUNK_S so that ``--no-preempt`` ends on time too.
    """
    while not board.over():
        blocking_sleep(max(min(BLOCK_CHUNK_S, board.deadline - monotonic()), 0.0))
        board.blocker_sleeps += 1


def cpu_hog() -> None:
    """Arithmetic in a tight loop: it never waits for anything.

    Without preemption nobody else runs, so nobody could tell it to stop: it
    checks the deadline itself, or ``--no-preempt`` would never end.
    """
    x = 0
    while not board.over():
        for i in range(10_000):
            x = (x * 31 + i) % 1_000_003
        board.hog_iterations += 10_000


# --- running and reporting -----------------------------------------------------------


class Progress:
    """About once a second, one line of figures: redrawn in place on a terminal."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.tty = sys.stdout.isatty()
        self.last_time = start
        self.last_count = 0
        self.drawn = False  # a progress line is on the screen, without its newline

    def tick(self) -> None:
        now = monotonic()
        rate = (board.answered - self.last_count) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_count = now, board.answered
        worst = max(board.worst_lateness, board.worst_lateness_in_stall)
        line = (f"[{now - self.start:5.1f}s] {board.answered:,} requests answered, "
                f"{rate:,.0f}/s, worst wake-up lateness {worst * 1000.0:.1f} ms")
        if board.in_stall(now):
            line += "  (sleep loop + CPU hog running)"
        if self.tty:
            print("\r" + line + "\033[K", end="", flush=True)  # redraw the line
            self.drawn = True
        else:
            print(line, flush=True)

    def event(self, text: str) -> None:
        """A line of its own, kept above the redrawn progress line."""
        self.done()
        print(text, flush=True)

    def done(self) -> None:
        """End the redrawn line, if there is one."""
        if self.drawn:
            print()
            self.drawn = False


def watch(progress: Progress, warmup_s: float, troublemakers: list[greensched.GreenThread]) -> None:
    """The main green thread's job: report every second; start the troublemakers after the warm-up."""
    start_at = progress.start + warmup_s
    next_tick = progress.start + PROGRESS_EVERY_S
    while not board.over():
        wake_at = min(next_tick, board.deadline, float("inf") if troublemakers else start_at)
        greensched.sleep(max(wake_at - monotonic(), 0.0))
        now = monotonic()
        if now >= next_tick or board.over():
            progress.tick()
            while next_tick <= now:  # on the second, even after a late wake-up or a freeze
                next_tick += PROGRESS_EVERY_S
        if not troublemakers and now >= start_at and not board.over():
            progress.event("starting the troublemakers: an unpatched time.sleep(1) loop "
                           "and a CPU hog")
            board.stall_from = monotonic()
            troublemakers.append(greensched.GreenThread(blocking_mistake, "blocking-mistake").start())
            troublemakers.append(greensched.GreenThread(cpu_hog, "cpu-hog").start())
    progress.done()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        greensched.set_preemption(enabled=not args.no_preempt, slice_ms=args.slice_ms)
    except ValueError as exc:
        print(f"send_to_server.py: {exc}", file=sys.stderr)
        return 2
    enabled, slice_ms = greensched.get_preemption()
    warmup_s = min(WARMUP_SHARE * args.seconds, WARMUP_MAX_S)
    # Each client holds a connection to the API (two fds: ours and the server's)
    # and briefly one to the cache.
    ensure_open_files(4 * args.clients + 100, f"--clients {args.clients}")
    print(f"send_to_server demo: {args.clients} clients for {args.seconds:g} s, preemption "
          f"{'ON, slice ' + format(slice_ms, 'g') + ' ms' if enabled else 'OFF'}")
    if not enabled:
        print("(preemption is off: expect everything to stop once the troublemakers start)")
    sys.stdout.flush()

    start = monotonic()
    board.deadline = start + args.seconds
    board.request_timeout = args.seconds + 60.0
    with serve(ApiHandler) as api_addr, serve(CacheHandler) as cache_addr:
        board.cache_addr = cache_addr
        clients = [greensched.GreenThread(send_to_server, f"client-{n}", (api_addr,)).start()
                   for n in range(args.clients)]
        troublemakers: list[greensched.GreenThread] = []
        interrupted = False
        try:
            watch(Progress(start), warmup_s, troublemakers)
        except KeyboardInterrupt:
            interrupted = True
            print("\ninterrupted: stopping the clients", flush=True)  # after the ^C
        finally:  # whatever happened: everybody stops now, before the servers close
            board.deadline = ended = min(board.deadline, monotonic())
            for thread in troublemakers + clients:
                thread.join()  # each finishes its current request or sleep: <= ~0.5 s
    board.note_silence_until(ended)  # a silence that lasted to the end counts too
    errors = sum(1 for client in clients if client.exception() is not None)
    report(args, enabled, slice_ms, start=start, ended=ended, errors=errors)
    if interrupted:
        return 130
    return 0 if errors == 0 and board.answered > 0 else 1


def report(args: argparse.Namespace, enabled: bool, slice_ms: float, start: float,
           ended: float, errors: int) -> None:
    """The human summary, then the machine-readable ``summary:`` line."""
    stats = greensched.stats()
    threads_left = stats["threads"] - 1  # everything but this main thread
    in_call = stats.get("call_preemptions", 0) + stats.get("stuck_preemptions", 0)
    stall_s = max(ended - board.stall_from, 0.0)
    before_s = max(min(board.stall_from, ended) - start, 1e-9)
    rate_before = (board.answered - board.answered_in_stall) / before_s
    rate_stall = board.answered_in_stall / stall_s if stall_s else 0.0
    print()
    print(f"{board.answered:,} requests answered in {ended - start:.1f} s by {args.clients} "
          f"clients, errors: {errors}")
    print(f"  before the troublemakers: {rate_before:,.0f}/s, clients' sleeps woke up to "
          f"{board.worst_lateness * 1000.0:.1f} ms late")
    print(f"  while they ran ({stall_s:.1f} s): {rate_stall:,.0f}/s, up to "
          f"{board.worst_lateness_in_stall * 1000.0:.1f} ms late; longest time without "
          f"any answer: {board.max_gap * 1000.0:.0f} ms")
    hog = f"the CPU hog did {board.hog_iterations:,} loop iterations"
    if board.hog_iterations == 0 and not enabled:
        # Started second, it never got the CPU: the blocking loop kept the only OS
        # thread until the deadline, and then the hog's first check said "over".
        hog += " (it never ran: without preemption the sleep loop kept the CPU to the end)"
    print(f"the unpatched time.sleep(1) returned {board.blocker_sleeps} times; {hog}")
    print(f"scheduler: {stats['switches']:,} switches, {stats.get('preemptions', 0):,} "
          f"preemptions ({in_call:,} from inside a C call such as the unpatched sleep)")
    fields = {
        "requests": board.answered,
        "errors": errors,
        "clients": args.clients,
        "seconds": f"{ended - start:.3f}",
        "preempt": "on" if enabled else "off",
        "slice_ms": f"{slice_ms:g}",
        "preemptions": stats.get("preemptions", 0),
        "call_preemptions": in_call,
        "switches": stats["switches"],
        "worst_lateness_ms": f"{max(board.worst_lateness, board.worst_lateness_in_stall) * 1000.0:.3f}",
        "stall_lateness_ms": f"{board.worst_lateness_in_stall * 1000.0:.3f}",
        "warmup_lateness_ms": f"{board.worst_lateness * 1000.0:.3f}",
        "rate_before": f"{rate_before:.1f}",
        "rate_stall": f"{rate_stall:.1f}",
        "stall_s": f"{stall_s:.3f}",
        "stall_requests": board.answered_in_stall,
        "max_gap_ms": f"{board.max_gap * 1000.0:.3f}",
        "block_chunk_ms": f"{BLOCK_CHUNK_S * 1000.0:g}",
        "blocker_sleeps": board.blocker_sleeps,
        "hog_iterations": board.hog_iterations,
        "threads_left": threads_left,
    }
    print("summary: " + " ".join(f"{k}={v}" for k, v in fields.items()), flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Hundreds of plain, blocking HTTP clients on green threads, next to an "
                    "unpatched time.sleep(1) loop and a CPU hog: with greensched's "
                    "preemption the clients keep going. Prints progress every second, "
                    "then a summary.",
    )
    parser.add_argument("--clients", type=int, default=300,
                        help="how many client green threads run send_to_server() (default: 300)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="how long the demo runs (default: 10); the troublemakers start "
                             f"after {WARMUP_SHARE * 100:.0f}%% of it, at most {WARMUP_MAX_S:g} s")
    parser.add_argument("--no-preempt", action="store_true",
                        help="turn preemption off (set_preemption(False)) to see the freeze: "
                             "the sleep loop and the hog stop everyone until they give up")
    parser.add_argument("--slice-ms", type=float, default=None,
                        help="the preemption time slice in milliseconds (default: 10, or "
                             "GREENSCHED_SLICE_MS)")
    args = parser.parse_args(argv)
    if args.clients < 1:
        parser.error("--clients must be at least 1")
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    if args.slice_ms is not None and not 0 < args.slice_ms < 3_600_000:
        # Checked here so the error names the flag typed, not set_preemption's slice_ms.
        parser.error(f"--slice-ms {args.slice_ms:g}: give the slice as a positive number of "
                     f"milliseconds below one hour, e.g. --slice-ms 5 (--no-preempt turns "
                     f"preemption off)")
    return args


if __name__ == "__main__":
    sys.exit(main())
