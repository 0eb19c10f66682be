"""CI's subset of CPython's own tests under patch_all(): as many pass as unpatched.

The full comparison (tools/stdlib_tests.py, all modules) takes too long for CI;
its table is in docs/stdlib-tests.md. These modules pass completely patched, but for
the tests the exclusion list explains (for the CPython version running), on every
version CI runs (about 11 s each).
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.util import REPO

MODULES = ["test_thread", "test_urllib2_localnet", "test_socketserver"]

pytest.importorskip("test.support", reason="this Python was installed without its test suite")


def test_stdlib_subset_passes_as_much_patched_as_unpatched(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "stdlib_tests.py"), "--timeout", "300",
         "--rerun-failures", "--json", str(out), *MODULES],
        capture_output=True, text=True, timeout=1200, cwd=str(REPO),
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    for module in MODULES:
        plain, patched = results[module]["plain"], results[module]["patched"]
        assert "status" not in patched, (module, patched)
        # A test that failed once and passed when run again alone is a flake of
        # CPython's timing-sensitive tests (on a loaded 2-core machine); say which, and
        # how it failed, so a pattern shows up in CI logs, but don't fail on it.
        for mode, result in (("unpatched", plain), ("patched", patched)):
            for test_id, traceback in result.get("flaky", {}).items():
                warnings.warn(f"{test_id} failed once {mode} and passed when rerun:\n{traceback}",
                              stacklevel=1)
        failing = {test_id: patched["tracebacks"].get(test_id, "") for test_id in patched["failing"]}
        # Excluded: tests that cannot pass by design, each with its reason in
        # tools/stdlib_exclusions.txt; everything else that passes plain passes patched.
        assert patched["passed"] + patched["excluded"] >= plain["passed"] > 0, (module, failing)
        assert patched["failed"] == patched["errors"] == 0, (module, failing)
