"""tools/stdlib_tests.py's own contract: the exclusion list's format and versions, and the
baseline that `--check` holds a run to (docs/stdlib-tests.md).

The CPython suites themselves run in tests/monkey/test_stdlib_subset.py (a subset) and
by hand (the table).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.util import REPO


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stdlib_tests", REPO / "tools" / "stdlib_tests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exclusions.txt"
    path.write_text(text)
    return path


def test_entries_apply_to_the_versions_they_name(tmp_path: Path) -> None:
    path = write(tmp_path, """# a comment
## A family
test_a.T.every  # always
test_a.T.only_312  [3.12]  # one version
test_a.T.from_312  [3.12+]  # and later
test_a.T.range  [3.11-3.12]  # a range
""")
    assert sorted(tool.load_exclusions(path, (3, 11))) == ["test_a.T.every", "test_a.T.range"]
    assert sorted(tool.load_exclusions(path, (3, 12))) == [
        "test_a.T.every", "test_a.T.from_312", "test_a.T.only_312", "test_a.T.range"]
    assert sorted(tool.load_exclusions(path, (3, 13))) == ["test_a.T.every", "test_a.T.from_312"]
    assert tool.load_exclusions(path, (3, 11))["test_a.T.every"] == "always"


@pytest.mark.parametrize("line", [
    "test_a.T.t",                      # no reason
    "test_a.T.t  #   ",                # an empty reason
    "test_a.T.t  3.12  # no brackets",
    "test_a.T.t  [3.x]  # not a version",
    "test_a.T.t  [3.12] extra  # too many words",
])
def test_a_malformed_entry_names_its_line(tmp_path: Path, line: str) -> None:
    path = write(tmp_path, "# header\n" + line + "\n")
    with pytest.raises(ValueError, match=r"exclusions.txt:2: "):
        tool.load_exclusions(path, (3, 12))


def test_the_repositorys_list_parses_for_every_supported_version() -> None:
    for minor in (11, 12, 13):
        exclusions = tool.load_exclusions(version=(3, minor))
        assert exclusions and all(reason for reason in exclusions.values())


def result(passed: int, **extra: object) -> dict[str, object]:
    return {"ran": passed, "passed": passed, "failed": 0, "errors": 0, **extra}


def test_check_reports_a_drop_a_hang_a_crash_and_a_module_never_recorded(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    tool.record(baseline, "3.12", {"test_a": {"plain": result(10), "patched": result(9)},
                                   "test_b": {"plain": result(5), "patched": result(5)},
                                   "test_c": {"plain": result(3), "patched": result(3)}})
    assert json.loads(baseline.read_text())["3.12"]["test_a"] == {"plain": 10, "patched": 9}
    same = {"test_a": {"patched": result(9)}, "test_b": {"patched": result(6)}}
    assert tool.check(baseline, "3.12", same) == []
    worse = {"test_a": {"patched": result(8)},
             "test_b": {"patched": result(5, hung=["test_b.T.t"])},
             "test_c": {"patched": {"status": "crashed (exit -11) after STOP test.test_c.T.u"}},
             "test_d": {"patched": result(1)}}
    drops = tool.check(baseline, "3.12", worse)
    assert drops == ["test_a: 8 passed patched, 9 recorded",
                     "test_b: hung in test_b.T.t",
                     "test_c: crashed (exit -11) after STOP test.test_c.T.u",
                     "test_d: no recorded figure for CPython 3.12 (run with --record)"]
    assert tool.check(baseline, "3.13", same)[0] == \
        "test_a: no recorded figure for CPython 3.13 (run with --record)"


def test_the_recorded_baseline_covers_the_default_modules_on_every_version() -> None:
    baseline = json.loads((REPO / "tools" / "stdlib_baseline.json").read_text())
    for version in ("3.11", "3.12", "3.13"):
        missing = [m for m in tool.DEFAULT_MODULES if "patched" not in baseline.get(version, {}).get(m, {})]
        assert not missing, (version, missing)
