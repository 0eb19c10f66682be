"""Stress at a 1 ms preemption slice, and with wake-up preemption at its 0.5 ms floor:
200 threads mixing everything, zero errors.

A fresh interpreter (``GREENSCHED_SLICE_MS=1``, or ``GREENSCHED_GRANULARITY_MS=0.5``
beside the default slice; ``patch_all()`` first) runs 200 green
threads for a while, in five roles: socket clients of a green echo server, lock
users doing read-modify-write with CPU work inside the lock, queue producers and
consumers, printers writing whole lines to stdout (a real pipe to the test), and
loggers writing through ``logging`` to stderr (another pipe). Every thread also
imports modules lazily from a temporary directory, many threads the same module
at once; each module computes for a while in its body and imports another, so
preemption requests land inside imports. The test checks that nothing raised,
nothing was lost or duplicated, every line arrived whole, every module was
complete when its importer saw it, all threads finished, and preemption happened.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from tests.reliability._procs import report, run_child, show

# `once`: CI runs these on its first interpreter only (.ci/run):
# load on the runtime; its version-specific parts are tested on each.
pytestmark = pytest.mark.once

N_MODULES = 60

MODULE = """
import time as _time
_end = _time.monotonic() + 0.002   # computing in the module body: ticks land here
_n = 0
while _time.monotonic() < _end:
    _n += 1
{nested}
VALUE = {k} * {k}
DONE = True
"""

STRESS = """
import greensched
greensched.patch_all()

import importlib, json, logging, queue, random, socket, sys, threading, time, traceback, zlib

DURATION, N_THREADS, N_MODULES = {duration}, 200, {n_modules}
sys.path.insert(0, {moddir!r})
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="L %(threadName)s %(message)s END")
log = logging.getLogger("stress")

errors = []
counts = {{"echoed": 0, "echo_bytes": 0, "increments": 0, "produced": 0, "consumed": 0,
          "printed": {{}}, "logged": {{}}, "imports": 0}}
stop_at = time.monotonic() + DURATION  # starting 200 threads (each start() waits) takes part of it

def lazy_import(rng):
    k = rng.randrange(N_MODULES)
    mod = importlib.import_module(f"lazy_{{k}}")
    if getattr(mod, "DONE", False) is not True or mod.VALUE != k * k:
        raise AssertionError(f"lazy_{{k}} seen half-initialised")
    counts["imports"] += 1

def guarded(role):
    def wrapper(tid):
        rng = random.Random(tid)
        try:
            role(tid, rng)
        except BaseException:
            errors.append(f"thread {{tid}}: " + traceback.format_exc())
    return wrapper

# -- sockets: a green echo server and clients checking every byte --------------
listener = socket.create_server(("127.0.0.1", 0), backlog=256)
address = listener.getsockname()

def echo(conn):
    try:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
    except BaseException:
        errors.append("echo: " + traceback.format_exc())

def serve():
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=echo, args=(conn,)).start()

def recv_exact(sock, n):
    parts = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise EOFError("echo server closed early")
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)

@guarded
def socket_client(tid, rng):
    with socket.create_connection(address, timeout=30) as sock:
        seq = 0
        while time.monotonic() < stop_at:
            body = zlib.compress(f"{{tid}}:{{seq}}".encode()) * rng.randint(1, 400)
            msg = len(body).to_bytes(4, "big") + body
            sock.sendall(msg)
            if recv_exact(sock, len(msg)) != msg:
                raise AssertionError("echo differs")
            counts["echoed"] += 1
            counts["echo_bytes"] += len(msg)
            seq += 1
            if seq % 50 == 0:
                lazy_import(rng)

# -- locks: read-modify-write with work inside the critical section ------------
lock = threading.Lock()
shared = {{"counter": 0, "inside": 0}}

@guarded
def locker(tid, rng):
    while time.monotonic() < stop_at:
        with lock:
            shared["inside"] += 1
            if shared["inside"] != 1:
                raise AssertionError("two threads inside the lock")
            value = shared["counter"]
            x = 0
            for i in range(rng.randint(100, 3000)):   # preemption lands in here
                x += i
            shared["counter"] = value + 1
            shared["inside"] -= 1
        counts["increments"] += 1
        if counts["increments"] % 500 == tid % 500:
            lazy_import(rng)

# -- queues: producers and consumers; every item exactly once ------------------
items = queue.Queue(maxsize=100)
seen = set()
N_CONSUMERS = 20

@guarded
def producer(tid, rng):
    seq = 0
    while time.monotonic() < stop_at:
        items.put((tid, seq))
        seq += 1
        counts["produced"] += 1
        if seq % 200 == 0:
            lazy_import(rng)

@guarded
def consumer(tid, rng):
    while True:
        item = items.get()
        if item is None:
            return
        if item in seen:
            raise AssertionError(f"item {{item}} delivered twice")
        seen.add(item)
        counts["consumed"] += 1

# -- printing and logging to real pipes ----------------------------------------
@guarded
def printer(tid, rng):
    n = 0
    while time.monotonic() < stop_at:
        print(f"P {{tid}} {{n}} " + "x" * rng.randint(0, 300) + " END")
        n += 1
        counts["printed"][tid] = n
        if n % 300 == 0:
            lazy_import(rng)
            time.sleep(0.001)

@guarded
def logger(tid, rng):
    n = 0
    while time.monotonic() < stop_at:
        log.info("%d %d %s", tid, n, "y" * rng.randint(0, 300))
        n += 1
        counts["logged"][tid] = n
        if n % 300 == 0:
            lazy_import(rng)
            time.sleep(0.001)

roles = {{0: socket_client, 1: locker, 2: producer, 3: printer, 4: logger}}
start = time.monotonic()
acceptor = threading.Thread(target=serve)
acceptor.start()
threads = []
for tid in range(N_THREADS - N_CONSUMERS):
    threads.append(threading.Thread(target=roles[tid % 5], args=(tid,), name=f"T{{tid}}"))
consumers = [threading.Thread(target=consumer, args=(1000 + i,)) for i in range(N_CONSUMERS)]
for t in threads + consumers:
    t.start()
for t in threads:
    t.join(DURATION + 60)
for _ in consumers:
    items.put(None)
for t in consumers:
    t.join(30)
listener.close()
acceptor.join(10)
alive = [t.name for t in threads + consumers + [acceptor] if t.is_alive()]
sys.stdout.flush()
stats = greensched.stats()
print(json.dumps({{"errors": errors[:5], "n_errors": len(errors), "alive": alive,
                  "seconds": round(time.monotonic() - start, 2),
                  "counter": shared["counter"], "unique_items": len(seen), **counts,
                  "preemptions": stats["preemptions"], "switches": stats["switches"]}}))
"""

P_LINE = re.compile(r"P (\d+) (\d+) x* END")
L_LINE = re.compile(r"L T(\d+) (\d+) (\d+) y* END")


#: The stress's preemption settings: a 1 ms slice (wake-ups then wait at most 1 ms too),
#: and the default 10 ms slice with wake-up preemption at the granularity's floor.
ONE_MS_SLICE = {"GREENSCHED_SLICE_MS": "1"}
WAKEUP_AT_THE_FLOOR = {"GREENSCHED_SLICE_MS": "10", "GREENSCHED_GRANULARITY_MS": "0.5"}


def stress(tmp_path: Path, duration: float, timeout: float, env: dict[str, str] = ONE_MS_SLICE) -> None:
    for k in range(N_MODULES):
        nested = f"import lazy_{k + 1}" if k + 1 < N_MODULES and k % 3 != 2 else ""
        (tmp_path / f"lazy_{k}.py").write_text(MODULE.format(k=k, nested=nested))
    code = STRESS.format(duration=duration, n_modules=N_MODULES, moddir=str(tmp_path))
    proc = run_child(code, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = report(proc.stdout)
    figures = {k: v for k, v in r.items() if k not in ("printed", "logged")}
    figures.update(lines_printed=sum(r["printed"].values()), lines_logged=sum(r["logged"].values()))
    show(f"stress at {env} for {duration:g} s", figures)
    assert r["n_errors"] == 0, r["errors"]
    assert r["alive"] == []
    assert r["counter"] == r["increments"] > 0
    assert r["produced"] == r["consumed"] == r["unique_items"] > 0
    assert r["echoed"] > 0 and r["imports"] > 0
    assert r["preemptions"] > 100  # preemption really happened all along

    printed: Counter[str] = Counter()
    for line in proc.stdout.splitlines()[:-1]:
        match = P_LINE.fullmatch(line)
        assert match, f"a torn or foreign line on stdout: {line[:200]!r}"
        printed[match[1]] += 1
    assert dict(printed) == r["printed"]  # every line arrived, whole, exactly once
    logged: Counter[str] = Counter()
    for line in proc.stderr.splitlines():
        match = L_LINE.fullmatch(line)
        assert match, f"a torn or foreign line on stderr: {line[:300]!r}"
        assert match[1] == match[2]  # the record names the thread that logged it
        logged[match[1]] += 1
    assert dict(logged) == r["logged"]


@pytest.mark.timeout(120)
def test_stress_200_threads_at_a_1ms_slice_short(tmp_path: Path) -> None:
    stress(tmp_path, duration=6, timeout=100)


@pytest.mark.timeout(120)
def test_stress_200_threads_with_wakeup_preemption_at_the_floor_short(tmp_path: Path) -> None:
    """Wake-up preemption switches at many more places than the slice's end does."""
    stress(tmp_path, duration=6, timeout=100, env=WAKEUP_AT_THE_FLOOR)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stress_200_threads_at_a_1ms_slice_30s(tmp_path: Path) -> None:
    """Half the wake-up run's length: the fixed slice switches at fewer kinds of places."""
    stress(tmp_path, duration=30, timeout=280)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stress_200_threads_with_wakeup_preemption_at_the_floor_60s(tmp_path: Path) -> None:
    stress(tmp_path, duration=60, timeout=280, env=WAKEUP_AT_THE_FLOOR)
