"""Run CPython's own test modules with and without greensched.patch_all(); compare.

    python tools/stdlib_tests.py [--timeout S] [test_queue test_select ...]

Each (module, patched?) pair runs in a fresh interpreter: the patched one calls
`greensched.patch_all()` before anything else, and stubs `test.support`'s
``threading_setup``/``threading_cleanup`` (they count and wait for real OS threads,
which turns every test into a long wait once threads are green). Tests are loaded
with unittest (honouring each module's ``load_tests``); resources such as
``network`` stay disabled, so nothing leaves the machine. The table lists
ran / passed / failed / errors / skipped per module, patched next to unpatched;
compare *passed*: an API the patch removes shows up as skips.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODULES = [
    "test_socket", "test_ssl", "test_httplib", "test_httpservers", "test_urllib2_localnet",
    "test_socketserver", "test_selectors", "test_select", "test_timeout", "test_queue",
    "test_threading", "test_thread", "test_threading_local", "test_subprocess",
]

CHILD = r"""
import json, sys, unittest
if sys.argv[2] == "patched":
    import greensched
    greensched.patch_all()
    from test import support
    from test.support import threading_helper
    threading_helper.threading_setup = lambda: ()
    threading_helper.threading_cleanup = lambda *args: None
    support.threading_setup = threading_helper.threading_setup
    support.threading_cleanup = threading_helper.threading_cleanup
import importlib
module = importlib.import_module("test." + sys.argv[1])
suite = unittest.defaultTestLoader.loadTestsFromModule(module)
result = unittest.TextTestRunner(stream=open("/dev/null", "w"), verbosity=0).run(suite)
bad = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
print("RESULT " + json.dumps({
    "ran": result.testsRun, "failed": len(result.failures), "errors": len(result.errors),
    "skipped": len(result.skipped), "passed": result.testsRun - bad - len(result.skipped),
    "failing": [str(t) for t, _ in result.failures + result.errors][:200],
}))
"""


def run(module: str, mode: str, timeout: float) -> dict[str, object]:
    """One module in one mode, in a fresh interpreter; a dict of counts (or a status)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        with tempfile.TemporaryDirectory() as scratch:  # the tests write TESTFN files in cwd
            proc = subprocess.run([sys.executable, "-c", CHILD, module, mode], capture_output=True,
                                  text=True, timeout=timeout, cwd=scratch, env=env,
                                  stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])  # type: ignore[no-any-return]
    return {"status": f"crashed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"}


def cells(r: dict[str, object]) -> str:
    if "status" in r:
        return f"{r['status']} | | | |"
    return f"{r['ran']} | {r['passed']} | {r['failed']} | {r['errors']} | {r['skipped']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", default=DEFAULT_MODULES)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per module and mode")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    options = parser.parse_args()
    print(f"python {sys.version.split()[0]}")
    print("| module | unpatched: ran | passed | failed | errors | skipped "
          "| patched: ran | passed | failed | errors | skipped |")
    print("|---" * 11 + "|")
    raw = {}
    for module in options.modules:
        plain = run(module, "plain", options.timeout)
        green = run(module, "patched", options.timeout)
        raw[module] = {"plain": plain, "patched": green}
        print(f"| {module} | {cells(plain)} | {cells(green)} |", flush=True)
    if options.json:
        options.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
