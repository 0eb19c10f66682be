"""Wake-up preemption: a sleeper that falls due, or a socket that becomes ready, is
served within the granularity beside a CPU hog, not at the end of its slice; and the
one-shot timer that makes it so is armed only when something could need it.

The timing tests run at a long slice (200 ms) and the default 1 ms granularity, so
that the two designs are far apart: served at the slice's end, a wake-up is late by
100 ms on average; served at the granularity, by about a millisecond. The bounds
(a median under 25 ms) sit between the two with room for a loaded machine.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import greensched
from greensched import Event, spawn
from greensched.net import socket as gsocket
from tests.util import REPO, run_python

LONG_SLICE_MS = 200.0


@pytest.fixture
def long_slice() -> Iterator[None]:
    """A 200 ms slice with the default 1 ms granularity; the settings restored after."""
    before = greensched.get_preemption()
    granularity = greensched.stats()["granularity_ms"]
    greensched.set_preemption(True, LONG_SLICE_MS, granularity_ms=1.0)
    yield
    greensched.set_preemption(*before, granularity_ms=granularity)


def _hog_until(stop: Event, limit: float = 30.0) -> int:
    """Pure-Python arithmetic until ``stop`` is set (or ``limit`` seconds); never blocks."""
    x = 0
    end = time.monotonic() + limit
    while not stop.is_set() and time.monotonic() < end:
        for i in range(200):
            x = (x * 31 + i) % 1_000_003
    return x


def test_a_sleeper_is_served_within_the_granularity_beside_a_hog(long_slice: None) -> None:
    late: list[float] = []
    stop = Event()

    def sleeper() -> None:
        for _ in range(40):
            due = time.monotonic() + 0.005
            greensched.sleep(0.005)
            late.append(time.monotonic() - due)
        stop.set()

    before = greensched.stats()
    hog = spawn(_hog_until, stop)
    spawn(sleeper).join()
    hog.join()
    after = greensched.stats()
    assert len(late) == 40
    # At the slice's end the median would be ~100 ms, and 40 wake-ups would take 8 s.
    assert statistics.median(late) < 0.025, sorted(late)
    assert after["wakeup_preemptions"] - before["wakeup_preemptions"] >= 20


def test_a_ready_socket_is_served_within_the_granularity_beside_a_hog(long_slice: None) -> None:
    """A child process writes time stamps into a socket while a hog runs; the reader,
    parked on the socket, reads each well before the hog's slice would end."""
    ours, theirs = socket.socketpair()
    reader_sock = gsocket.socket(fileno=ours.detach())
    sender = subprocess.Popen(
        [sys.executable, "-c",
         "import os, struct, sys, time\n"
         "fd = int(sys.argv[1])\n"
         "time.sleep(0.1)\n"
         "for _ in range(20):\n"
         "    time.sleep(0.015)\n"
         "    os.write(fd, struct.pack('d', time.monotonic()))\n",
         str(theirs.fileno())],
        pass_fds=[theirs.fileno()],
    )
    theirs.close()
    late: list[float] = []
    stop = Event()

    def reader() -> None:
        with reader_sock:
            for _ in range(20):
                data = b""
                while len(data) < 8:
                    chunk = reader_sock.recv(8 - len(data))
                    assert chunk, "the sender went away early"
                    data += chunk
                (sent,) = struct.unpack("d", data)
                late.append(time.monotonic() - sent)  # CLOCK_MONOTONIC is system-wide
        stop.set()

    try:
        before = greensched.stats()
        reading = spawn(reader)
        greensched.sleep(0.01)  # the reader is parked on its socket first
        hog = spawn(_hog_until, stop)
        reading.join()
        hog.join()
    finally:
        assert sender.wait(timeout=30) == 0
    after = greensched.stats()
    assert len(late) == 20
    assert statistics.median(late) < 0.025, sorted(late)
    assert after["wakeup_preemptions"] - before["wakeup_preemptions"] >= 10


def test_a_thread_woken_by_a_hog_runs_before_the_hog_is_done(preemption_on: None) -> None:
    """The hog sets an event (a hand-off) and computes on: no tick was armed for it
    (nobody else was ready before), so setting the event must arm one."""
    event, ran_at = Event(), []
    waiter = spawn(lambda: (event.wait(), ran_at.append(time.monotonic())))
    greensched.sleep(0.01)  # parked, with no timeout: nothing to tick for

    def hog() -> float:
        event.set()
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            pass
        return end

    end = spawn(hog).result()
    waiter.join()
    assert ran_at and ran_at[0] < end - 0.5, (ran_at, end)


def test_hogs_resumed_in_one_pass_are_each_preempted(preemption_on: None) -> None:
    """Three spinners started together, each waiting until all three have run: the
    first one's preemption uses the one-shot timer up in the middle of the hub's pass,
    so the hub arms it again before resuming the next (it hung before)."""
    started: set[int] = set()

    def spinner(n: int) -> None:
        started.add(n)
        while len(started) < 3:
            pass

    threads = [spawn(spinner, n) for n in range(3)]
    for t in threads:
        t.join(timeout=20)
    assert started == {0, 1, 2}
    assert not any(t.is_alive() for t in threads)


def test_no_signal_beside_threads_parked_without_a_timeout(preemption_on: None) -> None:
    """Nothing else could run: a thread computing beside parked threads gets no tick."""
    event = Event()
    parked = [spawn(event.wait) for _ in range(3)]
    greensched.sleep(0.01)
    before = greensched.stats()["ticks"]
    end = time.monotonic() + 0.2
    while time.monotonic() < end:
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert greensched.stats()["ticks"] - before <= 1
    event.set()
    for t in parked:
        t.join()


# -- settings ----------------------------------------------------------------------------------


def test_the_granularity_is_configurable_and_at_most_the_slice() -> None:
    before = greensched.get_preemption()
    granularity = greensched.stats()["granularity_ms"]
    try:
        greensched.set_preemption(True, 10.0, granularity_ms=2.5)
        assert greensched.stats()["granularity_ms"] == 2.5
        greensched.set_preemption(slice_ms=1.0)  # the slice bounds it
        assert greensched.stats()["granularity_ms"] == 1.0
        greensched.set_preemption(slice_ms=10.0)  # and the setting is kept
        assert greensched.stats()["granularity_ms"] == 2.5
    finally:
        greensched.set_preemption(*before, granularity_ms=granularity)


@pytest.mark.parametrize("value, message", [
    (0.1, r"granularity_ms=0\.1 is below the 0\.5 ms floor"),
    ("soon", r"granularity_ms='soon' is not a number of milliseconds"),
    (-1, r"must be a positive number of milliseconds"),
])
def test_a_bad_granularity_is_a_clear_error_and_changes_nothing(value: object, message: str) -> None:
    before = greensched.get_preemption(), greensched.stats()["granularity_ms"]
    with pytest.raises(ValueError, match=message):
        greensched.set_preemption(True, 5.0, granularity_ms=value)  # type: ignore[arg-type]
    assert (greensched.get_preemption(), greensched.stats()["granularity_ms"]) == before


def test_the_granularity_from_the_environment_and_the_command_line() -> None:
    code = "import greensched; print(greensched.stats()['granularity_ms'])"
    proc = run_python(code, env={"GREENSCHED_GRANULARITY_MS": "3"})
    assert proc.returncode == 0 and proc.stdout.split() == ["3.0"], proc.stderr
    proc = run_python(code, env={"GREENSCHED_GRANULARITY_MS": "0.01"})
    assert proc.returncode != 0
    assert "GREENSCHED_GRANULARITY_MS=" in proc.stderr and "floor" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "greensched", "--granularity", "2", "-c", code],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0 and proc.stdout.split() == ["2.0"], proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "greensched", "--granularity", "0.1", "-c", code],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 2 and "--granularity='0.1' is below the 0.5 ms floor" in proc.stderr


def test_a_thread_parked_inside_no_preempt_leaves_the_others_preemptible(preemption_on: None) -> None:
    """The no_preempt depth is the thread's own: one parked inside its section (it may
    park there) does not make a hog beside a ticker unpreemptible."""
    release = Event()

    def critical() -> None:
        with greensched.no_preempt():
            release.wait()

    holder = spawn(critical)
    greensched.sleep(0.01)  # parked inside its section
    late: list[float] = []

    def sleeper() -> None:
        for _ in range(20):
            due = time.monotonic() + 0.005
            greensched.sleep(0.005)
            late.append(time.monotonic() - due)
        stop.set()

    stop = Event()
    sleeping = spawn(sleeper)
    greensched.sleep(0.001)  # the sleeper is in its first sleep
    hog = spawn(_hog_until, stop, 3.0)  # unpreempted, it would run its 3 s before the sleeper woke
    sleeping.join()
    hog.join()
    release.set()
    holder.join()
    assert len(late) == 20
    # Held by the other thread's section, the hog would run its 3 s first: one wake-up 3 s late.
    assert max(late) < 1.0, sorted(late)
