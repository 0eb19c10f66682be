"""echo_server: thousands of open connections, one green thread each, one OS thread.

The classic threaded server: accept a connection, hand it to a thread of its own,
and in that thread ``recv`` and ``sendall`` until the client hangs up. With OS
threads, thousands of connections mean thousands of OS threads. After
``greensched.patch_all()`` the very same socket code runs each connection on a
green thread: a ``recv`` that has nothing to read parks that thread only.

This example runs both sides in one process. The server has one green thread per
connection. ``--connections`` clients (2000 by default) first all connect, so the
server holds every connection open at once, then each sends a few messages of
random bytes with a length and a CRC-32 in front, and checks that what comes back
is exactly what it sent and that the checksum matches. It prints a summary and a
``summary: key=value ...`` line (read by tests/test_examples.py), and exits 1 if
any echo was wrong.

Every connection costs two file descriptors here (the client's and the server's),
so the example raises its open-file limit as far as the hard limit allows.

Run it::

    python examples/echo_server.py                      # 2000 connections
    python examples/echo_server.py --connections 5000 --messages 2
"""

from __future__ import annotations

import greensched

greensched.patch_all()  # first: sockets made from here on are green

import argparse  # noqa: E402 - after patch_all() on purpose
import os  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import zlib  # noqa: E402
from time import monotonic  # noqa: E402

from _servers import ensure_open_files  # noqa: E402

HEADER = struct.Struct("!II")  # payload length, CRC-32 of the payload
MAX_PAYLOAD = 16 * 1024
CONNECTING_AT_ONCE = 256  # connects in flight, so the listen backlog never overflows
TIMEOUT_S = 60.0  # no socket operation here should ever wait this long


# --- the server: one green thread per connection -------------------------------------


class EchoServer:
    """Accepts connections on 127.0.0.1 and echoes each one in its own green thread."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=CONNECTING_AT_ONCE * 2)
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self.handlers: set[greensched.GreenThread] = set()
        self.open = 0
        self.peak_open = 0
        self.echoed = 0  # bytes sent back
        self.acceptor = greensched.spawn(self.accept_forever)

    def accept_forever(self) -> None:
        while True:
            conn, _ = self.listener.accept()  # parks until a client connects
            self.handlers.add(greensched.spawn(self.echo, conn))

    def echo(self, conn: socket.socket) -> None:
        """Send back everything the client sends, until it hangs up."""
        self.count_open(+1)
        try:
            with conn:
                while data := conn.recv(65536):  # parks while there is nothing to read
                    conn.sendall(data)
                    with greensched.no_preempt():  # `+=` is several bytecodes
                        self.echoed += len(data)
        finally:
            self.count_open(-1)
            self.handlers.discard(greensched.current_thread())

    def count_open(self, change: int) -> None:
        with greensched.no_preempt():
            self.open += change
            self.peak_open = max(self.peak_open, self.open)

    def close(self) -> None:
        """Stop accepting and wait for the connections still open to end."""
        self.acceptor.kill()  # GreenThreadExit where it waits, in accept()
        self.listener.close()
        for handler in list(self.handlers):
            handler.join()


# --- the clients ---------------------------------------------------------------------


class Gate:
    """Opens when ``count`` threads have arrived (a one-shot ``threading.Barrier``)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.arrived = 0
        self.opened = greensched.Event()

    def arrive(self) -> None:
        with greensched.no_preempt():  # `+=` is several bytecodes
            self.arrived += 1
            if self.arrived == self.count:
                self.opened.set()

    def wait(self) -> None:
        self.opened.wait()


class Clients:
    """What the client threads share: two gates, and their results."""

    def __init__(self, count: int, messages: int) -> None:
        self.messages = messages
        self.connecting = greensched.Semaphore(CONNECTING_AT_ONCE)
        self.connected = Gate(count)  # every client has tried to connect
        self.finished = Gate(count)  # every client is done talking
        self.verified = 0  # bytes that came back intact
        self.errors: list[str] = []

    def add_verified(self, size: int) -> None:
        with greensched.no_preempt():
            self.verified += size


def client(clients: Clients, address: tuple[str, int], seed: int) -> None:
    """Connect; when all are connected, send and check messages; hang up when all are done.

    The two gates make every connection stay open from the first message to the last.
    """
    try:
        try:
            with clients.connecting:
                sock = socket.create_connection(address, timeout=TIMEOUT_S)
        finally:
            clients.connected.arrive()
        with sock:
            clients.connected.wait()
            talk(clients, sock, random.Random(seed))
            clients.finished.arrive()
            clients.finished.wait()
    except (OSError, ValueError) as exc:
        clients.errors.append(repr(exc))
        clients.finished.arrive()


def talk(clients: Clients, sock: socket.socket, rng: random.Random) -> None:
    for _ in range(clients.messages):
        clients.add_verified(exchange(sock, os.urandom(rng.randint(1, MAX_PAYLOAD))))


def exchange(sock: socket.socket, payload: bytes) -> int:
    """Send one framed, checksummed message; check the echo byte for byte; its size."""
    message = HEADER.pack(len(payload), zlib.crc32(payload)) + payload
    sock.sendall(message)
    echo = recv_exactly(sock, len(message))
    length, crc = HEADER.unpack_from(echo)
    body = echo[HEADER.size:]
    if echo != message or length != len(body) or zlib.crc32(body) != crc:
        raise ValueError(f"bad echo: {len(echo)} bytes, checksum {zlib.crc32(body):08x} "
                         f"!= {crc:08x}")
    return len(message)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = sock.recv(min(size, 65536))
        if not chunk:
            raise ConnectionError(f"the server hung up with {size} bytes still to come")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


# --- running -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_open_files(2 * args.connections + 100, f"--connections {args.connections}")
    print(f"echo server: {args.connections} connections, {args.messages} messages each",
          flush=True)
    start = monotonic()
    server = EchoServer()
    clients = Clients(args.connections, args.messages)
    threads = [greensched.spawn(client, clients, server.address, seed)
               for seed in range(args.connections)]
    for thread in threads:
        thread.join()
    server.close()
    elapsed = monotonic() - start
    report(args, server, clients, elapsed)
    ok = (not clients.errors and server.peak_open == args.connections
          and clients.verified == server.echoed)
    return 0 if ok else 1


def report(args: argparse.Namespace, server: EchoServer, clients: Clients, elapsed: float) -> None:
    for error in clients.errors[:5]:
        print(f"error: {error}", file=sys.stderr)
    print(f"{server.peak_open:,} connections open at once, each on its own green thread")
    print(f"{server.echoed:,} bytes echoed, {clients.verified:,} checked by the clients, "
          f"in {elapsed:.2f} s; errors: {len(clients.errors)}")
    fields = {
        "connections": args.connections,
        "peak_open": server.peak_open,
        "messages": args.connections * args.messages,
        "bytes": server.echoed,
        "verified": clients.verified,
        "errors": len(clients.errors),
        "seconds": f"{elapsed:.3f}",
        "threads_left": greensched.stats()["threads"] - 1,
    }
    print("summary: " + " ".join(f"{k}={v}" for k, v in fields.items()), flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="An echo server with one green thread per connection, and as many "
                    "clients in the same process checking the echoes of checksummed "
                    "messages. Prints a summary.",
    )
    parser.add_argument("--connections", type=int, default=2000,
                        help="how many clients connect, all open at once (default: 2000)")
    parser.add_argument("--messages", type=int, default=4,
                        help="how many messages each client sends (default: 4)")
    args = parser.parse_args(argv)
    if args.connections < 1 or args.messages < 0:
        parser.error("--connections must be at least 1 and --messages not negative")
    return args


if __name__ == "__main__":
    sys.exit(main())
