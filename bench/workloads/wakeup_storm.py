"""Wake-up storms beside a CPU hog: many timers, many sockets, one thread hogging the CPU.

``hog_ticker`` asks whether *one* 5 ms ticker keeps time beside the pure-Python hog
of fairness.py; these two ask the same of many waiters whose wake-ups fall at random
moments, the shape of a server's load, while the same hog (``fairness.hog``) runs for
``seconds``:

``storm_sleepers``: ``threads`` threads each sleep (``time.sleep``, once) until a
deadline of their own, drawn with a seeded ``random.Random`` inside the hog's window,
and record when they were due and when they woke. Reported: the lateness (woke −
due) p50, p99 and max over the wake-ups due during the hog, and the hog's loop
iterations per second.

``storm_sockets``: ``sockets`` connected socket pairs (``socket.socketpair()``,
after patching). A child process (``python -I -S -c SENDER``: plain CPython, no
greensched, nothing patched, on a core of its own if there is one) holds the other
ends and writes, at seeded random moments inside the hog's window, ``messages``
8-byte messages per socket, each carrying the child's ``time.monotonic()`` at the
moment of sending. CLOCK_MONOTONIC is one clock for the whole machine on Linux, so a
receiver thread per socket (blocking ``recv``) can subtract that stamp from its own
``monotonic()`` at receipt: the lateness is the time from the bytes being there to
the thread holding them. Reported: the lateness p50, p99 and max over the messages
sent during the hog, the number of messages received (the run fails if one is lost)
and the hog's rate. The child exits once it has sent everything, which closes its
ends: each receiver reads until EOF.

Coroutine twins: tasks on ``asyncio.sleep`` and on ``loop.sock_recv`` of
non-blocking sockets, the hog in a task that never awaits; there, as on gevent and
eventlet, every wake-up waits for the end of the hog.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from time import monotonic

from ._spec import Context, Figures, Metric, Target, Workload
from ._ticker import lateness_ms
from .fairness import hog, hog_rate

SETTLE = 0.5  # seconds from the set-up's start to the hog's: every waiter is waiting by then
MARGIN = 0.1  # deadlines and sends fall in [hog start + MARGIN, hog end - MARGIN]
RECV_TIMEOUT = 60.0  # seconds a receiver waits for a message (or EOF) before the run fails
_STAMP = struct.Struct("=d")

#: The child process of storm_sockets: plain Python, nothing patched, no site-packages.
SENDER = r"""
import json, os, random, struct, sys, time
cfg = json.loads(sys.argv[1])
rng = random.Random(cfg["seed"])
plan = sorted((rng.uniform(cfg["first"], cfg["last"]), fd)
              for fd in cfg["fds"] for _ in range(cfg["messages"]))
stamp = struct.Struct("=d")
for due, fd in plan:
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    os.write(fd, stamp.pack(time.monotonic()))
for fd in cfg["fds"]:
    os.close(fd)
"""


def _lateness(records: list[tuple[float, float]], out: dict[str, float]) -> list[float]:
    """Seconds late of the (due or sent, woke or received) pairs that fell due during the hog."""
    return [max(got - due, 0.0) for due, got in records if out["start"] <= due <= out["end"]]


def _deadlines(n: int, base: float, seconds: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [base + rng.uniform(MARGIN, seconds - MARGIN) for _ in range(n)]


def _sleep_until(when: float) -> None:
    delay = when - monotonic()
    if delay > 0:
        time.sleep(delay)


# -- storm_sleepers ------------------------------------------------------------------------


def _sleepers_figures(records: list[tuple[float, float]], out: dict[str, float],
                      threads: int) -> Figures:
    rate = hog_rate(out)
    if len(records) != threads:
        raise AssertionError(f"{threads - len(records)} of {threads} sleepers never woke")
    return {**lateness_ms(_lateness(records, out), "the hog"), "hog_rate": rate}


def run_sleepers_threaded(ctx: Context, threads: int, seconds: float, seed: int) -> Figures:
    """Plain ``threading`` code: a thread per deadline, the hog in a thread of its own."""
    base = monotonic() + SETTLE
    records: list[tuple[float, float]] = []

    def sleeper(due: float) -> None:
        _sleep_until(due)
        records.append((due, monotonic()))

    sleepers = [threading.Thread(target=sleeper, args=(due,))
                for due in _deadlines(threads, base, seconds, seed)]
    for t in sleepers:
        t.start()
    _sleep_until(base)
    out: dict[str, float] = {}
    hogging = threading.Thread(target=hog, args=(seconds, out))
    hogging.start()
    hogging.join()
    for t in sleepers:
        t.join()
    return _sleepers_figures(records, out, threads)


async def run_sleepers_async(ctx: Context, threads: int, seconds: float, seed: int) -> Figures:
    """The coroutine twin: a task per deadline on ``asyncio.sleep``; the hog never awaits."""
    base = monotonic() + SETTLE
    records: list[tuple[float, float]] = []

    async def sleeper(due: float) -> None:
        await asyncio.sleep(max(due - monotonic(), 0.0))
        records.append((due, monotonic()))

    async def hogging(out: dict[str, float]) -> None:
        hog(seconds, out)

    sleepers = [asyncio.create_task(sleeper(due))
                for due in _deadlines(threads, base, seconds, seed)]
    await asyncio.sleep(max(base - monotonic(), 0.0))
    out: dict[str, float] = {}
    await asyncio.create_task(hogging(out))
    await asyncio.gather(*sleepers)
    return _sleepers_figures(records, out, threads)


# -- storm_sockets -------------------------------------------------------------------------


def _start_sender(theirs: list[socket.socket], base: float, seconds: float, messages: int,
                  seed: int) -> subprocess.Popen[bytes]:
    """The child that writes the stamped messages; the caller closes ``theirs`` after."""
    fds = [s.fileno() for s in theirs]
    cfg = {"fds": fds, "messages": messages, "seed": seed,
           "first": base + MARGIN, "last": base + seconds - MARGIN}
    return subprocess.Popen([sys.executable, "-I", "-S", "-c", SENDER, json.dumps(cfg)],
                            pass_fds=fds, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def _stamps(data: bytes) -> list[float]:
    return [s for (s,) in _STAMP.iter_unpack(data)]


def _sockets_figures(records: list[tuple[float, float]], out: dict[str, float],
                     expected: int, child: subprocess.Popen[bytes]) -> Figures:
    rate = hog_rate(out)
    if child.returncode != 0:
        raise AssertionError(f"the sender process exited with status {child.returncode}")
    if len(records) != expected:
        raise AssertionError(f"{expected - len(records)} of {expected} messages were lost")
    return {**lateness_ms(_lateness(records, out), "the hog"), "received": float(len(records)),
            "hog_rate": rate}


def _stop(child: subprocess.Popen[bytes] | None, *groups: list[socket.socket]) -> None:
    """Kill the child if it still runs, reap it, close every socket."""
    try:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
    finally:
        for group in groups:
            for s in group:
                s.close()


def _pairs(n: int) -> tuple[list[socket.socket], list[socket.socket]]:
    mine: list[socket.socket] = []
    theirs: list[socket.socket] = []
    try:
        for _ in range(n):
            a, b = socket.socketpair()
            mine.append(a)
            theirs.append(b)
    except BaseException:
        _stop(None, mine, theirs)
        raise
    return mine, theirs


def run_sockets_threaded(ctx: Context, sockets: int, messages: int, seconds: float,
                         seed: int) -> Figures:
    """Plain blocking sockets: a receiver thread per socket, the hog in a thread of its own."""
    mine, theirs = _pairs(sockets)
    child: subprocess.Popen[bytes] | None = None
    try:
        base = monotonic() + SETTLE
        child = _start_sender(theirs, base, seconds, messages, seed)
        _stop(None, theirs)  # the child holds them now; its exit is each receiver's EOF
        records: list[tuple[float, float]] = []
        errors: list[str] = []

        def receiver(sock: socket.socket) -> None:
            sock.settimeout(RECV_TIMEOUT)
            pending = b""
            try:
                while data := sock.recv(4096):
                    received = monotonic()
                    pending += data
                    whole = len(pending) - len(pending) % _STAMP.size
                    records.extend((sent, received) for sent in _stamps(pending[:whole]))
                    pending = pending[whole:]
                if pending:
                    errors.append(f"{len(pending)} stray bytes before EOF")
            except Exception as exc:  # reported by the main thread, which fails the run
                errors.append(f"{type(exc).__name__}: {exc}")

        receivers = [threading.Thread(target=receiver, args=(s,)) for s in mine]
        for t in receivers:
            t.start()
        _sleep_until(base)
        out: dict[str, float] = {}
        hogging = threading.Thread(target=hog, args=(seconds, out))
        hogging.start()
        hogging.join()
        for t in receivers:
            t.join()
        child.wait(RECV_TIMEOUT)
        if errors:
            raise AssertionError(f"{len(errors)} receiver(s) failed; first: {errors[0]}")
        return _sockets_figures(records, out, sockets * messages, child)
    finally:
        _stop(child, mine, theirs)


async def run_sockets_async(ctx: Context, sockets: int, messages: int, seconds: float,
                            seed: int) -> Figures:
    """The coroutine twin: ``loop.sock_recv`` on non-blocking sockets; the hog never awaits."""
    loop = asyncio.get_running_loop()
    mine, theirs = _pairs(sockets)
    child: subprocess.Popen[bytes] | None = None
    receiving: asyncio.Future[list[BaseException | None]] | None = None
    try:
        base = monotonic() + SETTLE
        child = _start_sender(theirs, base, seconds, messages, seed)
        _stop(None, theirs)
        records: list[tuple[float, float]] = []

        async def receiver(sock: socket.socket) -> None:
            sock.setblocking(False)
            pending = b""
            while data := await loop.sock_recv(sock, 4096):
                received = monotonic()
                pending += data
                whole = len(pending) - len(pending) % _STAMP.size
                records.extend((sent, received) for sent in _stamps(pending[:whole]))
                pending = pending[whole:]
            if pending:
                raise AssertionError(f"{len(pending)} stray bytes before EOF")

        async def hogging(out: dict[str, float]) -> None:
            hog(seconds, out)

        receiving = asyncio.gather(*(receiver(s) for s in mine), return_exceptions=True)
        await asyncio.sleep(max(base - monotonic(), 0.0))
        out: dict[str, float] = {}
        await asyncio.create_task(hogging(out))
        errors = [e for e in await asyncio.wait_for(receiving, RECV_TIMEOUT) if e is not None]
        if errors:
            raise AssertionError(f"{len(errors)} receiver(s) failed; first: {errors[0]!r}")
        child.wait(RECV_TIMEOUT)  # it has closed its ends (every EOF came): it is exiting
        return _sockets_figures(records, out, sockets * messages, child)
    finally:
        if receiving is not None and not receiving.done():  # failed: stop the receivers first
            receiving.cancel()
            await asyncio.wait([receiving])
            with contextlib.suppress(asyncio.CancelledError):
                receiving.exception()  # retrieved: no "exception was never retrieved" log
        _stop(child, mine, theirs)


WORKLOADS = [
    Workload(
        name="storm_sleepers",
        title="1,000 sleepers waking at random moments beside a CPU hog (3 s)",
        metrics=(
            Metric("p50_ms", "wake-up lateness p50", "ms", higher_is_better=False, primary=True),
            Metric("p99_ms", "wake-up lateness p99", "ms", higher_is_better=False,
                   target=Target("absolute", "<=", 1.5)),
            Metric("max_ms", "wake-up lateness max", "ms", higher_is_better=False),
            Metric("hog_rate", "hog iterations/s", "it/s", higher_is_better=True),
        ),
        run_threaded=run_sleepers_threaded,
        run_async=run_sleepers_async,
        full={"threads": 1000, "seconds": 3.0, "seed": 19},
        quick={"threads": 1000, "seconds": 1.5, "seed": 19},
        note="Each thread sleeps once, until a seeded random deadline inside the hog's "
             "window. The cooperative runtimes wake nobody until the hog ends.",
    ),
    Workload(
        name="storm_sockets",
        title="100 sockets receiving stamped messages from another process beside a CPU hog (3 s)",
        metrics=(
            Metric("p50_ms", "receive lateness p50", "ms", higher_is_better=False, primary=True),
            Metric("p99_ms", "receive lateness p99", "ms", higher_is_better=False),
            Metric("max_ms", "receive lateness max", "ms", higher_is_better=False),
            Metric("received", "messages received", "messages", higher_is_better=True),
            Metric("hog_rate", "hog iterations/s", "it/s", higher_is_better=True),
        ),
        run_threaded=run_sockets_threaded,
        run_async=run_sockets_async,
        full={"sockets": 100, "messages": 10, "seconds": 3.0, "seed": 19},
        quick={"sockets": 100, "messages": 5, "seconds": 1.5, "seed": 19},
        note="A plain-Python child process writes 8-byte messages stamped with its "
             "`time.monotonic()` at seeded random moments inside the hog's window (10 per "
             "socket); the lateness is the receiver's `monotonic()` at receipt minus the "
             "stamp. Every message must arrive. The cooperative runtimes receive nothing "
             "until the hog ends.",
    ),
]
