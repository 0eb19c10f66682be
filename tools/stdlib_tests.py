"""Run CPython's own test modules with and without greensched.patch_all(); compare.

    python tools/stdlib_tests.py [--timeout S] [--test-timeout S] [--gevent] [test_queue ...]

Each (module, patched?) pair runs in a fresh interpreter: the patched one calls
`greensched.patch_all()` before anything else, and stubs `test.support`'s
``threading_setup``/``threading_cleanup``/``wait_threads_exit``: they count and
wait for real OS threads, which turns tests into long waits or failures once
threads are green (and host names are resolved on `to_thread`'s OS threads). Tests are loaded
with unittest (honouring each module's ``load_tests``); resources such as
``network`` stay disabled, so nothing leaves the machine.

Two things keep one bad test from hiding a module's results:

* **Exclusions.** ``tools/stdlib_exclusions.txt`` lists, with a reason each, the
  tests that cannot pass by design once threads are green (they count OS threads,
  block on a C primitive nobody made green...). In the patched run they are
  reported as *excluded*, not run. Nothing else is skipped.
* **Hangs.** A test that runs longer than ``--test-timeout`` is a hang: the child
  dumps its tracebacks (``faulthandler``) and exits, the runner notes the test as
  *hung* and runs the module again without it. Hung tests count as errors.

* **Flakes** (``--rerun-failures``, in every mode alike). A failing test is run
  once more alone in a fresh process; one that passes then is reported as *flaky*,
  with the end of its first traceback, and counted as passed. Each failure's
  traceback tail is kept in the JSON (``tracebacks``) either way.

The table lists ran / passed / failed / errors / skipped per module, patched next
to unpatched, plus what was excluded or hung; compare *passed*. ``--gevent`` adds
the same module under gevent's ``monkey.patch_all()`` (the same stubs, no
exclusions), the incumbent we measure ourselves against.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_MODULES", "load_exclusions", "run", "record", "check", "main"]

REPO = Path(__file__).resolve().parent.parent
EXCLUSIONS = REPO / "tools" / "stdlib_exclusions.txt"
#: Each CPython version's recorded passes per module and mode (``--record``, ``--check``).
BASELINE = REPO / "tools" / "stdlib_baseline.json"
DEFAULT_MODULES = [
    "test_socket", "test_ssl", "test_httplib", "test_httpservers", "test_urllib2_localnet",
    "test_socketserver", "test_selectors", "test_select", "test_timeout", "test_queue",
    "test_threading", "test_thread", "test_threading_local", "test_subprocess",
    # Threads, sockets and signals beyond the above: event loops over green sockets,
    # signal handlers that interrupt green waits, logging's handler locks and socket
    # handlers, the sched module's waits.
    "test_asyncio", "test_threadsignals", "test_signal", "test_logging", "test_sched",
]
#: How many times a module is run again after a hang before the runner gives up on it.
MAX_HANGS = 8

# The child: argv = module, mode, per-test timeout, JSON {test id prefix: reason},
# JSON [test ids to run] (empty: all). It prints "START <id>" before each test
# (flushed) so the parent can name a hang.
CHILD = r"""
import faulthandler, json, signal, sys, unittest
# A shell without job control starts background jobs with SIGINT ignored, and Python
# then leaves it ignored: _thread.interrupt_main() does nothing and every test that
# interrupts itself (test_threading's InterruptMainTests, asyncio's Runner tests)
# hangs or fails, patched or not. The tests expect Python's usual handler.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
module_name, mode, test_timeout, skip = sys.argv[1], sys.argv[2], float(sys.argv[3]), json.loads(sys.argv[4])
only = set(json.loads(sys.argv[5]))
if mode in ("patched", "gevent"):
    if mode == "patched":
        import greensched
        greensched.patch_all()
    else:
        from gevent import monkey
        monkey.patch_all()
    from test import support
    from test.support import threading_helper
    import contextlib
    threading_helper.threading_setup = lambda: ()
    threading_helper.threading_cleanup = lambda *args: None
    threading_helper.wait_threads_exit = lambda *args, **kwargs: contextlib.nullcontext()
    support.threading_setup = threading_helper.threading_setup
    support.threading_cleanup = threading_helper.threading_cleanup
import importlib
module = importlib.import_module("test." + module_name)
suite = unittest.defaultTestLoader.loadTestsFromModule(module)

def matching(test_id):
    short = test_id.removeprefix("test.")
    for prefix, reason in skip.items():
        if short == prefix or short.startswith(prefix + "."):
            return reason
    return None

def prune(suite):
    # Replace each skipped test by one that reports it skipped with the reason.
    for test in suite._tests:
        if isinstance(test, unittest.TestSuite):
            prune(test)
            continue
        reason = matching(test.id())
        if reason is not None:
            test_method = getattr(test, test._testMethodName)
            setattr(test, test._testMethodName,
                    unittest.skip("EXCLUDED: " + reason)(test_method))

prune(suite)

def select(suite):
    # Keep only the tests named in `only` (a rerun of the ones that failed).
    kept = unittest.TestSuite()
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            sub = select(test)
            if sub.countTestCases():
                kept.addTest(sub)
        elif test.id() in only:
            kept.addTest(test)
    return kept

if only:
    suite = select(suite)

class Result(unittest.TextTestResult):
    # CPython 3.12.1 does not start (nor count in testsRun) a test skipped by a
    # decorator, 3.11 and 3.13 do; every excluded test is one. Count those ourselves,
    # so that "ran" means the same on every version.
    started = set()
    unstarted_skips = 0
    def startTest(self, test):
        self.started.add(test.id())
        print("START " + test.id(), flush=True)
        faulthandler.dump_traceback_later(test_timeout, exit=True, file=sys.stderr)
        super().startTest(test)
    def addSkip(self, test, reason):
        if test.id() not in self.started:
            self.unstarted_skips += 1
        super().addSkip(test, reason)
    def stopTest(self, test):
        faulthandler.cancel_dump_traceback_later()
        super().stopTest(test)
        print("STOP " + test.id(), flush=True)

runner = unittest.TextTestRunner(stream=open("/dev/null", "w"), verbosity=0, resultclass=Result)
result = runner.run(suite)
bad = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
ran = result.testsRun + result.unstarted_skips
excluded = [t.id() for t, why in result.skipped if why.startswith("EXCLUDED: ")]
print("RESULT " + json.dumps({
    "ran": ran, "failed": len(result.failures), "errors": len(result.errors),
    "skipped": len(result.skipped) - len(excluded), "excluded": len(excluded),
    "passed": ran - bad - len(result.skipped),
    "failing": [t.id() for t, _ in result.failures + result.errors][:300],
    # The end of each failure's traceback: enough to see what went wrong in a CI log.
    "tracebacks": {str(t.id()): "\n".join(tb.splitlines()[-12:])
                   for t, tb in (result.failures + result.errors)[:20]},
    "kinds": {**{t.id(): "failed" for t, _ in result.failures},
              **{t.id(): "errors" for t, _ in result.errors}},
}))
"""


def load_exclusions(path: Path = EXCLUSIONS,
                    version: tuple[int, int] | None = None) -> dict[str, str]:
    """Parse the exclusion list; the entries that apply to CPython ``version`` (default: ours).

    One entry a line: ``module.Class[.test]  [versions]  # reason``. ``[versions]`` is
    optional (every version): ``[3.13]`` one version, ``[3.12+]`` that one and later,
    ``[3.11-3.12]`` a range. ``## heading`` lines group the entries by family (why they
    cannot pass); they, and other ``#`` comment lines, are for readers.

    A reason is required: an exclusion nobody can explain is a bug being hidden.
    """
    if version is None:
        version = (sys.version_info[0], sys.version_info[1])
    exclusions: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entry, sep, reason = line.partition("#")
        words = entry.split()
        if not sep or not reason.strip() or not 1 <= len(words) <= 2 \
                or (len(words) == 2 and not (words[1].startswith("[") and words[1].endswith("]"))):
            raise ValueError(f"{path}:{number}: expected 'module.Class.test  [3.12+]  # reason' "
                             f"(the versions are optional), got {line!r}")
        if len(words) == 2 and not _applies(words[1][1:-1], version, f"{path}:{number}"):
            continue
        exclusions[words[0]] = reason.strip()
    return exclusions


def _applies(versions: str, version: tuple[int, int], where: str) -> bool:
    """Does ``3.13``, ``3.12+`` or ``3.11-3.12`` include ``version``?"""
    def parse(text: str) -> tuple[int, int]:
        major, dot, minor = text.partition(".")
        if not (dot and major.isdigit() and minor.isdigit()):
            raise ValueError(f"{where}: {versions!r} is not a version like 3.12, 3.12+ or 3.11-3.12")
        return int(major), int(minor)
    if versions.endswith("+"):
        return version >= parse(versions[:-1])
    low, dash, high = versions.partition("-")
    return parse(low) <= version <= parse(high if dash else low)


def _run_once(module: str, mode: str, skip: dict[str, str], timeout: float,
              test_timeout: float, only: Sequence[str] = ()) -> tuple[dict[str, object], str]:
    """One child run: its parsed result (or a status), and the test it hung in, if any.

    ``only`` names the tests to run (all when empty).
    """
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = [sys.executable, "-c", CHILD, module, mode, str(test_timeout), json.dumps(skip),
            json.dumps(list(only))]
    with tempfile.TemporaryDirectory() as scratch:  # the tests write TESTFN files in cwd
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                                  cwd=scratch, env=env, stdin=subprocess.DEVNULL)
            stdout, stderr, code = proc.stdout, proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as expired:
            stdout = (expired.stdout or b"").decode() if isinstance(expired.stdout, bytes) \
                else (expired.stdout or "")
            stderr, code = "", None
    marks = [line for line in stdout.splitlines() if line.startswith(("START ", "STOP "))]
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):]), ""
    # A test that started and never stopped is the culprit; a hang between tests
    # (a class or module fixture) names none.
    last = marks[-1][len("START "):] if marks and marks[-1].startswith("START ") else ""
    where = {"last_mark": marks[-1] if marks else "", "stderr_tail": stderr.splitlines()[-40:]}
    if code is None:
        return {"status": f"timeout after {timeout:.0f} s", **where}, last
    return {"status": f"crashed (exit {code}) after {where['last_mark'] or 'no test'}", **where}, last


def run(module: str, mode: str, timeout: float, test_timeout: float,
        exclusions: dict[str, str], rerun_failures: bool = False) -> dict[str, object]:
    """One module in one mode; hung tests are dropped and the module run again.

    With ``rerun_failures``, each test that failed is run once more on its own in a
    fresh process. One that passes then is reported under ``flaky`` (with the
    traceback of its first failure) and no longer counted as failed: CPython's
    suites have timing-sensitive tests, and a loaded machine fails one now and then.
    One that fails again stays a failure.
    """
    skip = dict(exclusions)
    hung: list[str] = []
    while True:
        result, last = _run_once(module, mode, skip, timeout, test_timeout)
        if "status" not in result or not last or len(hung) >= MAX_HANGS:
            break
        short = last.removeprefix("test.")
        if short in skip:  # the hang was in a class fixture around an excluded test
            break
        hung.append(short)
        skip[short] = "hung"
    if hung and "status" not in result:
        result["hung"] = hung
        # The child reported them as excluded skips; they are errors.
        result["errors"] = int(result["errors"]) + len(hung)  # type: ignore[call-overload]
        result["excluded"] = int(result["excluded"]) - len(hung)  # type: ignore[call-overload]
    if rerun_failures and "status" not in result and result.get("failing"):
        _rerun_failures(result, module, mode, timeout, test_timeout, skip)
    return result


def _rerun_failures(result: dict[str, Any], module: str, mode: str, timeout: float,
                    test_timeout: float, skip: dict[str, str]) -> None:
    """Run each failing test of ``result`` alone once more; move those that pass to flaky."""
    flaky: dict[str, str] = {}
    for test_id in list(result["failing"]):
        again, _ = _run_once(module, mode, skip, timeout, test_timeout, only=[test_id])
        if "status" not in again and again["ran"] == 1 and again["passed"] == 1:
            flaky[test_id] = result["tracebacks"].get(test_id, "")
    if not flaky:
        return
    for test_id in flaky:
        result["failing"].remove(test_id)
        kind = result["kinds"].get(test_id, "failed")  # counted as a failure or an error
        result[kind] -= 1
    result["passed"] += len(flaky)
    result["flaky"] = flaky


def cells(r: dict[str, object]) -> str:
    if "status" in r:
        return f"{r['status']} | | | |"
    return f"{r['ran']} | {r['passed']} | {r['failed']} | {r['errors']} | {r['skipped']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", default=DEFAULT_MODULES)
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds per module run (default 1800)")
    parser.add_argument("--test-timeout", type=float, default=120.0,
                        help="seconds one test may take before it counts as hung (default 120)")
    parser.add_argument("--plain", action=argparse.BooleanOptionalAction, default=True,
                        help="also run each module unpatched (default: yes)")
    parser.add_argument("--gevent", action="store_true",
                        help="also run each module under gevent's monkey.patch_all(), to compare")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--rerun-failures", action="store_true",
                        help="run each failing test once more alone; report those that pass "
                             "then as flaky (with their first traceback) instead of failed")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a module's patched passes fall below its figure in "
                             "--baseline for this CPython version (or it crashed, or hung)")
    parser.add_argument("--record", action="store_true",
                        help="write this run's passes into --baseline for this CPython version")
    parser.add_argument("--baseline", type=Path, default=BASELINE,
                        help=f"the recorded figures (default {BASELINE.relative_to(REPO)})")
    options = parser.parse_args()
    exclusions = load_exclusions()
    print(f"python {sys.version.split()[0]}")
    gevent_head = " gevent: ran | passed | failed | errors | skipped |" if options.gevent else ""
    print("| module | unpatched: ran | passed | failed | errors | skipped "
          "| patched: ran | passed | failed | errors | skipped | excluded | hung |" + gevent_head)
    print("|---" * (18 if options.gevent else 13) + "|")
    raw = {}
    for module in options.modules:
        plain: dict[str, object] = {"status": "not run"}
        if options.plain:
            plain = run(module, "plain", options.timeout, options.test_timeout, {},
                        rerun_failures=options.rerun_failures)
        green = run(module, "patched", options.timeout, options.test_timeout, exclusions,
                    rerun_failures=options.rerun_failures)
        raw[module] = {"plain": plain, "patched": green}
        extra = (f"{green.get('excluded', '')} | {len(green.get('hung', []))}"  # type: ignore[arg-type]
                 if "status" not in green else " | ")
        row = f"| {module} | {cells(plain)} | {cells(green)} | {extra} |"
        if options.gevent:
            # gevent gets no exclusions: the comparison is with what it passes as is.
            peer = run(module, "gevent", options.timeout, options.test_timeout, {},
                       rerun_failures=options.rerun_failures)
            raw[module]["gevent"] = peer
            row += f" {cells(peer)} |"
        print(row, flush=True)
        if options.json:
            options.json.write_text(json.dumps(raw, indent=1))
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if options.record:
        record(options.baseline, version, raw)
    if options.check:
        drops = check(options.baseline, version, raw)
        for drop in drops:
            print("DROP " + drop)
        if drops:
            sys.exit(1)
        print(f"every module at or above its recorded figure for CPython {version}")


def _passed(result: dict[str, object]) -> int | None:
    return None if "status" in result else int(result["passed"])  # type: ignore[call-overload]


def record(path: Path, version: str, raw: dict[str, dict[str, dict[str, object]]]) -> None:
    """Keep each module's passes (per mode run) for ``version`` in the baseline file."""
    baseline = json.loads(path.read_text()) if path.exists() else {}
    figures = baseline.setdefault(version, {})
    for module, modes in raw.items():
        entry = figures.setdefault(module, {})
        for mode, result in modes.items():
            passed = _passed(result)
            if passed is not None:
                entry[mode] = passed
    path.write_text(json.dumps(baseline, indent=1, sort_keys=True) + "\n")


def check(path: Path, version: str, raw: dict[str, dict[str, dict[str, object]]]) -> list[str]:
    """What fell below the baseline: a module patched short of its figure, crashed or hung."""
    figures = json.loads(path.read_text()).get(version, {}) if path.exists() else {}
    drops = []
    for module, modes in raw.items():
        green = modes["patched"]
        passed = _passed(green)
        if passed is None:
            drops.append(f"{module}: {green['status']}")
            continue
        if green.get("hung"):
            drops.append(f"{module}: hung in {', '.join(green['hung'])}")  # type: ignore[arg-type]
        want = figures.get(module, {}).get("patched")
        if want is None:
            drops.append(f"{module}: no recorded figure for CPython {version} (run with --record)")
        elif passed < want:
            drops.append(f"{module}: {passed} passed patched, {want} recorded")
    return drops


if __name__ == "__main__":
    main()
