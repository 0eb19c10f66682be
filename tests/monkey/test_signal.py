"""The green `signal`: a handler's exception reaches the main thread, as with OS threads.

Each test sends the signal from a green thread other than main with ``os.kill(getpid())``:
CPython runs the handler at that thread's next bytecode check, so which green
thread it interrupts is fixed, not a matter of timing.
"""

from __future__ import annotations

import json
import signal

from tests.util import run_python

SENDER = """
import json, os, signal, sys
import greensched
{before}
greensched.patch_all()
{after}
log = []
def sender():
    os.kill(os.getpid(), signal.SIGUSR1)   # the handler runs here, in this green thread
    log.append("sender went on")
    return "sender finished"
t = greensched.spawn(sender)
try:
    t.join(10)
    log.append("main: no exception")
except Exception as exc:
    log.append(f"main got {{type(exc).__name__}}: {{exc}}")
    t.join(10)
print(json.dumps({{"log": log, "result": t.result()}}))
"""

HANDLER = """
class Stop(Exception):
    pass
def handler(signum, frame):
    raise Stop(f"signal {signum}")
"""


def run_sender(before: str = "", after: str = "") -> dict[str, object]:
    proc = run_python(SENDER.format(before=before, after=after))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_an_exception_from_a_handler_is_raised_in_main_and_the_interrupted_thread_goes_on() -> None:
    r = run_sender(after=HANDLER + "signal.signal(signal.SIGUSR1, handler)")
    assert r["log"] == ["sender went on", f"main got Stop: signal {int(signal.SIGUSR1)}"]
    assert r["result"] == "sender finished"


def test_a_handler_installed_before_patch_all_is_routed_too() -> None:
    r = run_sender(before=HANDLER + "signal.signal(signal.SIGUSR1, handler)")
    assert r["log"] == ["sender went on", f"main got Stop: signal {int(signal.SIGUSR1)}"]


def test_sys_exit_in_a_sigterm_handler_ends_the_program_not_the_running_thread() -> None:
    proc = run_python(
        """
        import os, signal, sys
        import greensched
        greensched.patch_all()
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(3))  # the usual pattern
        went_on = []
        def worker():
            os.kill(os.getpid(), signal.SIGTERM)
            went_on.append(True)
        t = greensched.spawn(worker)
        try:
            t.join(10)
        finally:
            print("worker went on:", went_on == [True], flush=True)
        print("not reached")
        """
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.splitlines() == ["worker went on: True"]


def test_a_handler_raising_in_main_raises_there_as_before() -> None:
    proc = run_python(
        """
        import os, signal
        import greensched
        greensched.patch_all()
        def handler(signum, frame):
            raise LookupError("in main")
        signal.signal(signal.SIGUSR1, handler)
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(1000):
                pass
        except LookupError as exc:
            print("main caught", exc)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "main caught in main"


def test_getsignal_and_signal_give_back_the_installed_handler_never_the_wrapper() -> None:
    proc = run_python(
        """
        import signal, time
        import greensched
        from greensched.monkey._signal import RoutedHandler
        greensched.patch_all()
        def handler(signum, frame):
            pass
        assert signal.signal(signal.SIGUSR2, handler) is signal.SIG_DFL
        assert signal.getsignal(signal.SIGUSR2) is handler
        assert signal.signal(signal.SIGUSR2, signal.SIG_IGN) is handler
        assert signal.getsignal(signal.SIGUSR2) is signal.SIG_IGN
        c_getsignal = greensched.original("signal", "getsignal")
        signal.signal(signal.SIGUSR2, handler)
        assert isinstance(c_getsignal(signal.SIGUSR2), RoutedHandler)
        assert greensched.is_patched("signal", "signal")
        # greensched's own handlers are installed as they are: make preemption start.
        def spin():
            end = time.monotonic() + 0.05
            while time.monotonic() < end:
                pass
        a, b = greensched.spawn(spin), greensched.spawn(spin)
        a.join(); b.join()
        tick = c_getsignal(signal.SIGALRM)
        assert not isinstance(tick, RoutedHandler), tick
        assert type(tick.__self__).__name__ == "Preemptor", tick
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_patch_all_signal_false_leaves_the_module_alone() -> None:
    proc = run_python(
        """
        import signal
        c_signal = signal.signal
        import greensched
        greensched.patch_all(signal=False)
        print(signal.signal is c_signal, greensched.is_patched("signal"))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True False"


def test_a_handler_that_lands_in_the_hub_may_block_and_its_exception_still_reaches_main() -> None:
    """Every green thread waits, so the signal lands in the hub, which cannot block: the
    handler (a socket round trip, then sys.exit, as a SIGTERM handler that flushes its
    state would) runs in a green thread of its own. It used to fail with HubError."""
    proc = run_python("""
import json, os, signal, socket, sys, threading, time
import greensched
greensched.patch_all()
from greensched._core._hub import get_hub
a, b = socket.socketpair()
def echo():
    while data := b.recv(10):
        b.sendall(data)
threading.Thread(target=echo, daemon=True).start()
seen = {}
def on_term(signum, frame):
    seen["frame"] = frame.f_code.co_name if frame is not None else None
    a.sendall(b"bye")
    seen["echo"] = a.recv(10).decode()
    sys.exit(3)
signal.signal(signal.SIGTERM, on_term)
hub = get_hub()
def kill_once_the_hub_sleeps():  # on a real OS thread, while main waits for it
    deadline = time.monotonic() + 10
    while not hub._polling and time.monotonic() < deadline:
        time.sleep(0.001)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)  # main is woken by the handler's exception, not by our return
try:
    greensched.to_thread(kill_once_the_hub_sleeps)
    seen["main"] = "returned"
except SystemExit as exc:
    seen["main"] = f"SystemExit {exc.code}"
print(json.dumps(seen))
""")
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    # The handler gets the main green thread's innermost frame, as CPython passes the
    # interrupted frame of the main thread (here: where main parks).
    assert seen == {"frame": "park", "echo": "bye", "main": "SystemExit 3"}
