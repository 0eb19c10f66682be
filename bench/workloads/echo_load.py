"""Peak memory under load: thousands of connections open at once, 64 KiB echoed on each.

The users' guarantee of tests/reliability/test_load.py, as a benchmark beside the
peers: ``connections`` client threads connect to an in-process echo server (one
thread per accepted connection), wait until every connection is open (a barrier),
then each sends a pseudo-random 64 KiB payload of its own in chunks, half-closes,
and reads the echo back while hashing it; a wrong or missing byte fails the run.
The figures: the process's peak RSS (``ru_maxrss``: the interpreter, the runtime,
every thread's stack and every socket buffer the process touched at its
busiest), and the payload echoed per second over the whole run.

Both ends live in one process, so it needs two fds per connection: it raises its
soft RLIMIT_NOFILE to the hard limit, and runs fewer connections (saying so in the
figures) if even that is too low. There is no coroutine twin.
"""

from __future__ import annotations

import hashlib
import random
import resource
import socket
import threading
from time import perf_counter

from ._spec import Context, Figures, Metric, Workload
from .tcp_echo import _acceptor  # the same echo server as tcp_echo's

_PAYLOAD = 64 * 1024


def _raise_fd_limit(want: int) -> int:
    """Raise the soft fd limit toward ``want`` (at most the hard limit); return the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def _load(connections: int) -> tuple[float, int]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(4096)
    address = server.getsockname()
    lock, everyone = threading.Lock(), threading.Event()
    connected, echoed, errors = [0], [0], []

    def client(i: int) -> None:
        rng = random.Random(i)
        payload = rng.randbytes(_PAYLOAD)
        try:
            with socket.create_connection(address, timeout=300) as sock:
                with lock:
                    connected[0] += 1
                    if connected[0] == connections:
                        everyone.set()
                if not everyone.wait(300):
                    raise TimeoutError("not every client got connected")

                def write() -> None:
                    view, sent = memoryview(payload), 0
                    while sent < _PAYLOAD:
                        step = rng.randint(1, 16384)
                        sock.sendall(view[sent:sent + step])
                        sent += step
                    sock.shutdown(socket.SHUT_WR)

                writer = threading.Thread(target=write)
                writer.start()
                digest, got = hashlib.sha256(), 0
                while chunk := sock.recv(65536):
                    digest.update(chunk)
                    got += len(chunk)
                writer.join()
            if got != _PAYLOAD or digest.digest() != hashlib.sha256(payload).digest():
                errors.append(f"connection {i}: {got} bytes back, checksum differs")
            else:
                with lock:
                    echoed[0] += got
        except Exception as exc:  # reported by the main thread, which fails the run
            errors.append(f"connection {i}: {type(exc).__name__}: {exc}")

    acceptor = threading.Thread(target=_acceptor, args=(server, connections), daemon=True)
    acceptor.start()
    clients = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    start = perf_counter()
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    elapsed = perf_counter() - start
    acceptor.join()
    server.close()
    if errors:
        raise AssertionError(f"{len(errors)} connection(s) failed; first: {errors[0]}")
    return elapsed, echoed[0]


def run_threaded(ctx: Context, connections: int) -> Figures:
    soft = _raise_fd_limit(2 * connections + 200)
    connections = min(connections, (soft - 200) // 2)
    elapsed, echoed = _load(connections)
    assert echoed == connections * _PAYLOAD
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"peak_rss_mib": peak_kib / 1024.0, "mbps": echoed / elapsed / 1e6,
            "connections": float(connections)}


WORKLOADS = [
    Workload(
        name="echo_load",
        title="Echo under load: up to 9,900 connections open at once x 64 KiB, verified",
        metrics=(Metric("peak_rss_mib", "peak RSS", "MiB", higher_is_better=False, primary=True),
                 Metric("mbps", "MB/s echoed", "MB/s", higher_is_better=True),
                 Metric("connections", "connections at once", "", higher_is_better=True)),
        run_threaded=run_threaded,
        run_async=None,
        full={"connections": 9900},
        quick={"connections": 300},
        note="both ends in one process: two fds per connection, capped by the hard fd limit "
             "(20,000 here: 9,900 connections). OS threads need one real thread per client, "
             "writer and handler: skip them with --runtimes at this size.",
    ),
]
