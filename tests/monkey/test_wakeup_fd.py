"""The green `signal.set_wakeup_fd` (monkey/_signal_wakeup.py): the program's own signals only.

Each test runs a patched child process: the wake-up fd, the preemption timer and the
program's SIGALRM are process-wide. The children make preemption tick by running two
spinning green threads side by side, and read `greensched.monitor.stats()["ticks"]`
to show that it did.
"""

from __future__ import annotations

import json
import signal

from tests.util import run_python

PRELUDE = """
import json, os, signal, socket, sys, time
import greensched
from greensched import monitor
greensched.patch_all()
import threading

def spin_together(seconds):
    # Two green threads that never wait: preemption switches them on its ticks.
    end = time.monotonic() + seconds
    def spin():
        while time.monotonic() < end:
            pass
    threads = [threading.Thread(target=spin) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

def drain(sock):
    try:
        return list(sock.recv(4096))
    except BlockingIOError:
        return []
"""


def run_child(code: str, env: dict[str, str] | None = None) -> dict[str, object]:
    proc = run_python(PRELUDE + code, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_preemption_ticks_write_nothing_and_the_programs_signals_their_byte() -> None:
    r = run_child("""
r, w = socket.socketpair()
r.setblocking(False); w.setblocking(False)
got = []
signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
previous = signal.set_wakeup_fd(w.fileno())
ticks = monitor.stats()["ticks"]
spin_together(0.3)
ticks = monitor.stats()["ticks"] - ticks
after_spinning = drain(r)
os.kill(os.getpid(), signal.SIGUSR1)
deadline = time.monotonic() + 10
data = []
while not data and time.monotonic() < deadline:
    greensched.wait_readable(r.fileno(), timeout=1)
    data = drain(r)
print(json.dumps({"previous": previous, "ticks": ticks, "after_spinning": after_spinning,
                  "data": data, "handled": got}))
""")
    assert r["previous"] == -1
    assert isinstance(r["ticks"], int) and r["ticks"] > 0  # preemption did tick
    assert r["after_spinning"] == []  # ... and wrote no byte to the program's fd
    assert r["data"] == [int(signal.SIGUSR1)]
    assert r["handled"] == [int(signal.SIGUSR1)]


def test_the_virtual_alarm_writes_its_byte_before_its_handler_runs() -> None:
    """Preemption off: no real SIGALRM at all, so the byte can only be the virtual alarm's."""
    r = run_child("""
r, w = socket.socketpair()
r.setblocking(False); w.setblocking(False)
seen_in_handler = []
signal.signal(signal.SIGALRM, lambda s, f: seen_in_handler.append(drain(r)))
signal.set_wakeup_fd(w.fileno())
greensched.sleep(0.05)
before = drain(r)  # nothing yet (a stray tick's byte would show here)
signal.setitimer(signal.ITIMER_REAL, 0.05)
signal.pause()
print(json.dumps({"before": before, "seen_in_handler": seen_in_handler, "after": drain(r)}))
""", env={"GREENSCHED_PREEMPT": "0"})
    assert r["before"] == []
    assert r["seen_in_handler"] == [[int(signal.SIGALRM)]]
    assert r["after"] == []


def test_asyncio_sigalrm_handler_runs_when_the_alarm_falls_due_not_at_a_tick() -> None:
    """CPython's test_asyncio.test_events died of SIGALRM on this (a tick's byte ran the
    handler early, the test removed it, and the program's alarm then found SIG_DFL)."""
    r = run_child("""
import asyncio
async def main():
    loop = asyncio.get_running_loop()
    called = loop.create_future()
    loop.add_signal_handler(signal.SIGALRM, lambda: called.set_result(time.monotonic()))
    ticks = monitor.stats()["ticks"]
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    # Make preemption tick meanwhile: threads spinning beside the loop's thread.
    spinner = threading.Thread(target=spin_together, args=(0.2,))
    spinner.start()
    at = await asyncio.wait_for(called, 20)
    spinner.join()
    loop.remove_signal_handler(signal.SIGALRM)
    return {"after": at - start, "ticks": monitor.stats()["ticks"] - ticks}
print(json.dumps(asyncio.run(main())))
""")
    assert isinstance(r["ticks"], int) and r["ticks"] > 0
    assert isinstance(r["after"], float) and r["after"] >= 0.45  # the alarm's, not a tick's


def test_bad_fds_are_refused_as_the_real_call_refuses_them_and_minus_one_turns_it_off() -> None:
    r = run_child("""
import fcntl
errors = {}
blocking_r, blocking_w = os.pipe()
try:
    signal.set_wakeup_fd(blocking_w)
except ValueError as exc:
    errors["blocking"] = str(exc)
os.close(blocking_r); os.close(blocking_w)
try:
    signal.set_wakeup_fd(blocking_w)  # closed now
except OSError as exc:
    errors["closed"] = type(exc).__name__
try:
    signal.set_wakeup_fd("3")
except TypeError as exc:
    errors["type"] = str(exc)
r, w = socket.socketpair()
w.setblocking(False); r.setblocking(False)
first = signal.set_wakeup_fd(w.fileno())
second = signal.set_wakeup_fd(-1)
signal.signal(signal.SIGUSR1, lambda s, f: None)
os.kill(os.getpid(), signal.SIGUSR1)
greensched.sleep(0.05)
third = signal.set_wakeup_fd(-1)
print(json.dumps({"errors": errors, "first": first, "second": second, "third": third,
                  "w": w.fileno(), "after_off": drain(r)}))
""")
    errors = r["errors"]
    assert isinstance(errors, dict)
    assert errors["blocking"].endswith("must be in non-blocking mode")
    assert errors["closed"] == "OSError"
    assert "integer" in errors["type"]
    assert r["first"] == -1 and r["second"] == r["w"] and r["third"] == -1
    assert r["after_off"] == []
