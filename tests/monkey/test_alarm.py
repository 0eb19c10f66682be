"""The virtual SIGALRM (monkey/_signal.py): the program's alarm() beside the preemption timer.

Each test runs a patched child process: the preemption timer and the program's
SIGALRM are process-wide.
"""

from __future__ import annotations

import json
import signal

from tests.util import run_python

PRELUDE = """
import json, signal, sys, time
import greensched
greensched.patch_all()
import threading
"""


def run_child(code: str) -> dict[str, object]:
    proc = run_python(PRELUDE + code)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_an_alarm_whose_handler_raises_interrupts_a_green_lock_wait() -> None:
    r = run_child("""
class Alarm(Exception):
    pass
def handler(signum, frame):
    raise Alarm(signum)
signal.signal(signal.SIGALRM, handler)
lock = threading.Lock()
lock.acquire()
signal.setitimer(signal.ITIMER_REAL, 0.05)
start = time.monotonic()
try:
    lock.acquire(timeout=30)
    outcome = "acquired"
except Alarm as exc:
    outcome = f"Alarm {exc.args[0]}"
print(json.dumps({"outcome": outcome, "waited": time.monotonic() - start}))
""")
    assert r["outcome"] == f"Alarm {int(signal.SIGALRM)}"
    assert r["waited"] < 20  # interrupted, not timed out


def test_preemption_survives_the_program_using_and_cancelling_alarms() -> None:
    """alarm(0) and restoring the old handler used to stop the preemption timer for good."""
    r = run_child("""
old = signal.signal(signal.SIGALRM, lambda s, f: None)
first = signal.alarm(5)
left = signal.alarm(0)
restored = signal.signal(signal.SIGALRM, old)
stop = False
def hog():
    while not stop:
        pass
t = threading.Thread(target=hog)
t.start()
time.sleep(0.05)   # main runs again only if the hog is preempted
stop = True
t.join()
print(json.dumps({"first": first, "left": left, "old": repr(old),
                  "preempted": greensched.stats()["preemptions"] > 0}))
""")
    assert r == {"first": 0, "left": 5, "old": repr(signal.SIG_DFL), "preempted": True}


def test_an_interval_timer_repeats_and_reports_what_is_left() -> None:
    r = run_child("""
ticks = []
done = threading.Event()
def handler(signum, frame):
    ticks.append(signum)
    if len(ticks) == 3:
        done.set()
signal.signal(signal.SIGALRM, handler)
assert signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01) == (0.0, 0.0)
value, interval = signal.getitimer(signal.ITIMER_REAL)
done.wait(30)
old = signal.setitimer(signal.ITIMER_REAL, 0)
print(json.dumps({"ticks": len(ticks) >= 3, "value": 0 < value <= 0.01, "interval": interval,
                  "old_interval": old[1], "after": signal.getitimer(signal.ITIMER_REAL),
                  "handler_is_ours": signal.getsignal(signal.SIGALRM) is handler}))
""")
    assert r == {"ticks": True, "value": True, "interval": 0.01, "old_interval": 0.01,
                 "after": [0.0, 0.0], "handler_is_ours": True}


def test_sig_ign_ignores_the_alarm_and_sig_dfl_ends_the_process_as_sigalrm_would() -> None:
    r = run_child("""
signal.signal(signal.SIGALRM, signal.SIG_IGN)
signal.setitimer(signal.ITIMER_REAL, 0.01)
time.sleep(0.1)
print(json.dumps({"alive": True}))
""")
    assert r == {"alive": True}
    proc = run_python(PRELUDE + """
signal.signal(signal.SIGALRM, signal.SIG_DFL)
signal.setitimer(signal.ITIMER_REAL, 0.01)
time.sleep(30)
print("not reached")
""")
    assert proc.returncode == -signal.SIGALRM, (proc.returncode, proc.stderr)
    assert "not reached" not in proc.stdout


def test_bad_arguments_fail_as_the_real_functions_do() -> None:
    r = run_child("""
errors = {}
for name, call in [("alarm float", lambda: signal.alarm(1.5)),
                   ("negative", lambda: signal.setitimer(signal.ITIMER_REAL, -1)),
                   ("bad handler", lambda: signal.signal(signal.SIGALRM, 42))]:
    try:
        call()
        errors[name] = None
    except Exception as exc:
        errors[name] = type(exc).__name__
print(json.dumps(errors))
""")
    assert r == {"alarm float": "TypeError", "negative": "itimer_error", "bad handler": "TypeError"}


def test_pause_waits_for_the_programs_handler_not_for_the_preemption_tick() -> None:
    r = run_child("""
calls = []
signal.signal(signal.SIGALRM, lambda signum, frame: calls.append("alarm"))
signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append("usr1"))
stop = False
def hog():                       # keeps the preemption timer ticking meanwhile
    while not stop:
        pass
t = threading.Thread(target=hog)
t.start()
signal.setitimer(signal.ITIMER_REAL, 0.2)
signal.pause()                   # returns only once the virtual SIGALRM's handler ran
after_alarm = list(calls)
from greensched._core._hub import get_hub
main = get_hub().main
def sender():                    # signals once main is parked in pause(), not before
    import os
    while main.state != "PARKED":
        time.sleep(0)
    os.kill(os.getpid(), signal.SIGUSR1)
threading.Thread(target=sender).start()
signal.pause()                   # and for a real signal's handler
stop = True
t.join()
print(json.dumps({"after_alarm": after_alarm, "calls": calls}))
""")
    assert r == {"after_alarm": ["alarm"], "calls": ["alarm", "usr1"]}
