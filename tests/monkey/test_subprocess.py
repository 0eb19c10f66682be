"""Patched subprocess and os.waitpid: waiting for children parks green threads."""

from __future__ import annotations

from tests.util import run_python


def check(code: str) -> list[str]:
    proc = run_python("import greensched\ngreensched.patch_all()\n" + code, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


def test_twenty_children_from_twenty_green_threads_overlap() -> None:
    """subprocess.run of 20 `sleep 0.2` children takes well under 20 x 0.2 s."""
    out = check(
        """
import subprocess, time
start = time.monotonic()
threads = [greensched.spawn(subprocess.run, ["sleep", "0.2"]) for _ in range(20)]
codes = {t.result().returncode for t in threads}
print(codes, time.monotonic() - start < 2.0)
"""
    )
    assert out == ["{0} True"]


def test_communicate_and_wait_timeouts_match_the_stdlib() -> None:
    out = check(
        """
import subprocess, sys, time
r = subprocess.run([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"],
                   input="hello", capture_output=True, text=True)
print(r.returncode, r.stdout.strip())
p = subprocess.Popen(["sleep", "5"])
try:
    p.wait(timeout=0.1)
except subprocess.TimeoutExpired:
    print("wait timed out")
try:
    subprocess.run(["sleep", "5"], timeout=0.1)
except subprocess.TimeoutExpired:
    print("run timed out")
p.kill()
print(p.wait())
"""
    )
    assert out == ["0 HELLO", "wait timed out", "run timed out", "-9"]


def test_a_ticker_keeps_running_while_main_waits_for_a_child() -> None:
    out = check(
        """
import subprocess, time
ticks = []
stop = greensched.Event()
def ticker():
    while not stop.is_set():
        time.sleep(0.01)
        ticks.append(1)
t = greensched.spawn(ticker)
subprocess.run(["sleep", "0.3"])
stop.set(); t.join()
print(len(ticks) >= 15)
"""
    )
    assert out == ["True"]


def test_waitpid_errors_and_any_child() -> None:
    out = check(
        """
import os
try:
    os.waitpid(999999, 0)
except ChildProcessError as exc:
    print("ECHILD", exc.errno == 10)
pid = os.fork()
if pid == 0:
    os._exit(7)
got, status = os.waitpid(-1, 0)
print(got == pid, os.waitstatus_to_exitcode(status))
"""
    )
    assert out == ["ECHILD True", "True 7"]
