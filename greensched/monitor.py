"""Seeing inside the scheduler: counters, every green thread's stack, a blocking detector.

* `stats()`: counters of this OS thread's scheduler, cheap enough to leave on (the
  hub keeps them as it goes; this only reads them).
* `dump_stacks()` / `format_stacks()`: every green thread's name, ident, state,
  what it waits on and its Python stack, like Go's SIGQUIT dump. `set_dump_signal`
  (or ``GREENSCHED_DUMP_SIGNAL=SIGUSR1``, or ``python -m greensched --dump-signal``)
  prints it when the process gets that signal: ``kill -USR1 <pid>``.
* `start_blocking_detector()` (or ``GREENSCHED_BLOCKING_THRESHOLD_MS=100``, or
  ``python -m greensched --blocking-threshold 100``): an OS thread that notices when
  one green thread has held the CPU longer than the threshold without a switch,
  and prints its stack once per incident.

Why an OS thread for the detector: the thing it looks for is the main OS thread
not coming back to the hub. Nothing that runs *in* that OS thread (a green thread,
a timer, a signal handler) can be relied on to run then: a C call that never checks
for signals, or a section under `no_preempt`, is exactly what keeps them out. The
watcher reads two numbers the hub updates on every resume (``switches`` and
``resumed_at``): the same switch count and the same current thread across two
looks mean no switch happened in between. It takes the stuck thread's stack from
`sys._current_frames` and only ever reads.

It is built from the real ``_thread`` functions, captured when this module is
imported (before `patch_all` can make ``_thread`` green), as `threadpool` is.
"""

from __future__ import annotations

import _thread
import os
import sys
import traceback
from collections.abc import Callable
from time import monotonic
from typing import Any, TextIO

from ._core import _introspect, _signals, _stacks
from ._core._greenthread import GreenThread
from ._core._hub import Hub, get_hub

__all__ = [
    "stats", "format_stacks", "dump_stacks", "set_dump_signal", "start_blocking_detector",
    "stop_blocking_detector", "BlockingDetector", "configure_from_env", "set_dump_signal_from",
    "start_blocking_detector_ms",
]

# The real OS-thread primitives, captured before anything can patch them.
_start_new_thread = _thread.start_new_thread
_allocate_lock = _thread.allocate_lock


def stats() -> dict[str, Any]:
    """Counters of this OS thread's scheduler: cheap, safe to call often, never switches.

    Threads:

    * ``threads``: green threads alive now (started, not finished), main included.
    * ``spawned``: green threads ever started on this hub (main not counted).
    * ``running``: 1 when a green thread runs (the caller, usually), 0 from the hub.
    * ``ready``: threads waiting for their turn on the run queue.
    * ``parked``: threads waiting for something; ``parked_by`` splits them by what:
      ``sleep``, ``fd`` (socket, pipe, select), ``lock`` (Lock, RLock, Semaphore),
      ``condition``, ``event``, ``queue`` (get, put, join), ``join`` (a thread's
      join, `run`), ``to_thread`` (an OS-thread job), ``other``.

    Scheduling:

    * ``switches``: times the hub resumed a green thread.
    * ``run_queue_wait_p50_ms``, ``..._p99_ms``, ``..._max_ms``: how long a READY
      thread waited before the hub resumed it, over the last
      ``run_queue_wait_samples`` resumes (at most 1024). A p99 far above the slice
      means too much work for one OS thread; a max near a long C call's duration
      means one thread held the CPU (see the blocking detector).
    * ``timers``: pending timers (sleeps, timeouts); ``fds_waited_on``: fds with a
      parked reader or writer.
    * ``hub_polls``, ``hub_poll_seconds``: times the hub went to sleep in the
      netpoller because nothing was ready, and the seconds it slept in all (idle
      time; polls that only peek, with nothing to wait for, are not counted).

    Preemption (main OS thread only, where it exists):

    * ``preemption_enabled``, ``slice_ms``, ``granularity_ms``: the settings (the
      granularity in use: at most the slice).
    * ``ticks``: timer signals handled while a thread ran.
    * ``preemption_requests``: times a thread was asked to yield (it used its
      slice with others waiting, or a sleeper fell due, or an fd became ready);
      ``wakeup_preemptions`` of them for a sleeper or an fd.
    * ``preemptions``: switches that followed; ``call_preemptions`` of them at a
      call known to be safe, ``stuck_preemptions`` at a C call stuck for a slice.
    * ``retried_requests``: requests that landed at an unsafe point (inside a
      buffered write, greensched's own code) and were retried at the next check.
    * ``deferred_requests``: requests that found the thread under `no_preempt`
      and were held until the section ended.
    * ``timer_starts``: times the one-shot timer was armed while stopped (a tick
      that finds the hub asleep, or a thread alone, arms no other).
    """
    return _introspect.scheduler_stats(get_hub())


def format_stacks() -> str:
    """`dump_stacks`'s text: every green thread of this OS thread, with its stack."""
    return _introspect.format_stacks(get_hub())


def dump_stacks(file: TextIO | None = None) -> None:
    """Print every green thread's name, ident, state, what it waits on and its stack.

    To ``file``, default ``sys.stderr`` (written straight to its fd, so a dump that
    interrupts a ``print`` cannot trip over it). Never switches: callable from a
    green thread, a timer callback or a signal handler.
    """
    _introspect.write_text(format_stacks(), file)


# -- the dump signal -----------------------------------------------------------------------


def set_dump_signal(sig: Any, file: TextIO | None = None) -> None:
    """Print `dump_stacks` to ``file`` whenever the process receives ``sig``; None: stop.

    ``sig`` is a name (``"SIGUSR1"``, ``"USR1"``), a number or a `signal.Signals`.
    SIGALRM and SIGRTMAX (preemption's), SIGINT (Ctrl-C) and uncatchable signals
    are refused with a `ValueError`. Call from the main OS thread, which is where
    Python runs signal handlers. The handler only formats and writes: it never
    switches, and a program that waits for nothing else still gets its
    `DeadlockError` (the dump handler does not count as a way to wake anyone).

    Python runs a signal handler only between bytecodes: while the main OS thread
    is inside one long C call, the dump waits until the call returns. That case is
    the blocking detector's (`start_blocking_detector`), or `faulthandler`'s.
    """
    _set_dump_signal(sig, file, "set_dump_signal()")


def set_dump_signal_from(sig: Any, what: str, file: TextIO | None = None) -> None:
    """`set_dump_signal` for a setting named ``what`` (an env var, a flag): errors name it."""
    _set_dump_signal(sig, file, what)


def _set_dump_signal(sig: Any, file: TextIO | None, what: str) -> None:
    if sig is None:
        _signals.set_dump_signal(None)
        return
    signum = _signals.parse_signal(sig, what)
    hub = get_hub()
    if hub.preemptor is None:
        raise RuntimeError(
            f"{what}: the dump signal must be set from the main OS thread (only it runs Python "
            f"signal handlers); if this is GREENSCHED_DUMP_SIGNAL, import greensched in the main "
            f"thread first"
        )
    _signals.set_dump_signal(signum, lambda: _introspect.write_text(_introspect.format_stacks(hub), file))


# -- the blocking detector -----------------------------------------------------------------


class BlockingDetector:
    """Watches one hub from an OS thread; see the module docstring.

    Looks every ``threshold / 2`` seconds. An incident is one run of one thread
    (one value of ``hub.switches``): it is reported once, when the thread has held
    the CPU for ``threshold`` seconds and the watcher has seen it on two looks in a
    row, and its end is reported once too. Only reported while another green
    thread exists: a program with a single thread has nobody to block.
    """

    def __init__(self, hub: Hub, threshold: float, file: TextIO | None = None) -> None:
        self.hub = hub
        self.threshold = threshold
        self.interval = max(threshold / 2.0, 0.001)
        self.file = file
        #: Incidents reported so far.
        self.reports = 0
        self._stop = _allocate_lock()
        self._stop.acquire()  # held while running: `stop` releases it
        self._stopped = False
        self._seen: tuple[int, Any] = (-1, None)  # (switches, thread) at the previous look
        self._incident: tuple[int, Any, float] | None = None  # reported: (switches, thread, since)

    def start(self) -> BlockingDetector:
        _start_new_thread(self._watch, ())
        return self

    def stop(self) -> None:
        """Stop watching; the OS thread ends within one look (nothing is reported after)."""
        if not self._stopped:
            self._stopped = True
            self._stop.release()

    def _watch(self) -> None:
        while not self._stop.acquire(True, self.interval):
            try:
                self.check()
            except Exception as exc:  # a watcher must never die silently, nor take the program down
                _introspect.write_text(f"greensched: the blocking detector failed and stopped: {exc!r}\n",
                                       self.file)
                return

    def check(self) -> None:
        """One look at the hub (from the watcher's OS thread)."""
        hub = self.hub
        switches = hub.switches
        thread = hub.current
        since = hub.resumed_at
        if switches != hub.switches:
            return  # it moved while we looked: nothing is stuck
        incident = self._incident
        if incident is not None and (incident[0] != switches or incident[1] is not thread):
            self._incident = None
            name = _stacks.display_name(incident[1])
            self._write(f"greensched: green thread {name!r} (ident {incident[1].ident}) let go "
                        f"of the CPU after about {monotonic() - incident[2]:.2f} s\n")
        seen, self._seen = self._seen, (switches, thread)
        if thread is None or seen != (switches, thread) or self._incident is not None:
            return
        held = monotonic() - since
        if held < self.threshold or len(hub._threads) < 2:
            return
        frame = sys._current_frames().get(hub.os_thread_id)
        stack = _stacks.thread_stack(frame, keep_public=True)
        if hub.switches != switches:
            return  # it switched while we read its stack: that stack is someone else's
        caller = _stacks.thread_stack(frame, limit=1, user_only=True)
        self._incident = (switches, thread, since)
        self.reports += 1
        body = "".join("  " + line for entry in stack.format() for line in entry.splitlines(True))
        self._write(
            f"greensched: green thread {_stacks.display_name(thread)!r} (ident {thread.ident}) "
            f"has held the CPU for "
            f"{held:.2f} s without a switch (blocking detector threshold {self.threshold:g} s; "
            f"{len(hub._threads) - 1} other green threads, {hub.ready_count()} of them ready to run); "
            f"{self._why(thread)}\n"
            f"{_stuck_call(caller)}"
            f"{_hints()}"
            f"Its stack, innermost last:\n{body or '  (no Python frames outside greensched)'}\n"
        )

    def _why(self, thread: GreenThread) -> str:
        """The likely reason nobody preempted it, from the preemptor's settings."""
        p = self.hub.preemptor
        if p is None:
            return "this OS thread's hub is cooperative (only the main OS thread's is preemptive)"
        if not p.enabled:
            return "preemption is off"
        if thread._no_preempt:
            return "it is inside no_preempt()"
        return ("it is probably in a long call that does not return to Python: a C library that "
                "blocks without a hook (a C database driver such as mysqlclient, sync gRPC), a "
                "long C computation (a big regex or hash), an import: run such calls with "
                "greensched.to_thread()")

    def _write(self, text: str) -> None:
        if not self._stopped:
            _introspect.write_text(text, self.file)


#: Functions that may explain a stuck call from what they know (the monkey layer's
#: psycopg2 callback knows which connections are busy: `add_stuck_hint`). Each returns
#: a paragraph ending in a newline, or "" when it has nothing to say.
_stuck_hints: list[Callable[[], str]] = []


def add_stuck_hint(hint: Callable[[], str]) -> None:
    """Have the blocking detector's reports include ``hint()`` (once per function).

    It runs in the detector's OS thread while the stuck one is stopped in C: it must
    only read (no locks that thread may hold, no waiting).
    """
    if hint not in _stuck_hints:
        _stuck_hints.append(hint)


def _hints() -> str:
    text = ""
    for hint in _stuck_hints:  # appended to, never removed from: safe to iterate
        try:
            text += hint()
        except Exception as exc:  # a hint must not cost the report
            text += f"(a hint failed: {exc!r})\n"
    return text


def _stuck_call(caller: traceback.StackSummary) -> str:
    """The report's line naming the innermost Python frame outside greensched: the stuck
    call was made there (a C function it called has not returned), so that is the line
    to move to to_thread() or to fix."""
    if not caller:
        return ""
    entry = caller[-1]
    code = f": {entry.line.strip()}" if entry.line else ""
    return (f"The call that has not returned was made at {entry.filename}:{entry.lineno},"
            f" in {entry.name}(){code}\n")


_detector: BlockingDetector | None = None


def start_blocking_detector(threshold: float = 0.1, file: TextIO | None = None) -> BlockingDetector:
    """Report any green thread of this OS thread that holds the CPU over ``threshold`` s.

    Off by default. Replaces a detector already running. Reports go to ``file``
    (default ``sys.stderr``): the thread's name and ident, how long it has held the
    CPU, the likely reason, and its stack, once per incident. A C call that holds
    the GIL the whole time (most don't: hashing, I/O and sleeps release it) keeps
    the watcher out too; it reports once the call returns, if the thread still runs.
    """
    global _detector
    try:
        seconds = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"blocking detector threshold={threshold!r} is not a number of seconds; "
                         f"use e.g. threshold=0.1") from None
    if not (0.0 < seconds < 3600.0):
        raise ValueError(f"blocking detector threshold={threshold!r} must be a positive number of "
                         f"seconds below an hour, e.g. threshold=0.1")
    stop_blocking_detector()
    _detector = BlockingDetector(get_hub(), seconds, file).start()
    return _detector


def stop_blocking_detector() -> None:
    """Stop the blocking detector, if one runs."""
    global _detector
    if _detector is not None:
        _detector.stop()
        _detector = None


# -- configuration from the environment --------------------------------------------------------


def configure_from_env(environ: dict[str, str] | None = None) -> None:
    """Apply ``GREENSCHED_DUMP_SIGNAL`` and ``GREENSCHED_BLOCKING_THRESHOLD_MS``, if set.

    Called when greensched is imported. A value we cannot understand is a
    `ValueError` naming the variable and what it accepts, never silently ignored.
    """
    env = os.environ if environ is None else environ
    raw = env.get("GREENSCHED_DUMP_SIGNAL", "").strip()
    if raw:
        _set_dump_signal(raw, None, "GREENSCHED_DUMP_SIGNAL")
    raw = env.get("GREENSCHED_BLOCKING_THRESHOLD_MS", "").strip()
    if raw:
        start_blocking_detector_ms(raw, "GREENSCHED_BLOCKING_THRESHOLD_MS")


def start_blocking_detector_ms(value: Any, what: str) -> BlockingDetector | None:
    """`start_blocking_detector` from a number of milliseconds given as a setting; 0 is off."""
    try:
        ms = float(value)
    except (TypeError, ValueError):
        ms = float("nan")
    if ms == 0.0:
        return None
    if not (0.0 < ms < 3_600_000.0):
        raise ValueError(f"{what}={value!r} is not understood: give the threshold in milliseconds, "
                         f"e.g. {what}=100 to report a green thread holding the CPU over 100 ms "
                         f"(0 or unset: off)")
    return start_blocking_detector(ms / 1000.0)


configure_from_env()
