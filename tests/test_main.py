"""``python -m greensched PROGRAM`` sets the program up exactly as ``python PROGRAM`` does.

Each test runs the same program both ways, in fresh interpreters, and compares what the
program saw: ``sys.argv``, ``sys.path[0]``, ``__main__.__spec__``, its exit status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent

#: What the program reports about the way it was started, as one JSON line.
PROBE = """\
import json, sys
from greensched.monkey import is_patched
main = sys.modules["__main__"]
spec = globals().get("__spec__")
print("PROBE " + json.dumps({
    "argv": sys.argv,
    "path0": sys.path[0],
    "name": __name__,
    "spec": None if spec is None else spec.name,
    "file": globals().get("__file__"),
    "main_is_us": main.__dict__ is globals(),
    "patched": is_patched("time", "sleep"),
}))
"""


def env(*path: Path) -> dict[str, str]:
    """This checkout's greensched (and ``path``) importable, the default settings."""
    e = dict(os.environ)
    e.pop("GREENSCHED_PREEMPT", None)
    e.pop("GREENSCHED_SLICE_MS", None)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [*map(str, path), str(REPO), e.get("PYTHONPATH")]))
    return e


def run(args: list[str], cwd: Path, stdin: str | None = None,
        flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    # Under -P, sys.path starts with PYTHONPATH: the folder above finds -m probe.
    extra = (cwd.parent,) if "-P" in flags else ()
    return subprocess.run([sys.executable, *flags, *args], cwd=cwd, env=env(*extra), input=stdin,
                          capture_output=True, text=True, timeout=60)


def both(args: list[str], cwd: Path, stdin: str | None = None,
         flags: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess[str],
                                               subprocess.CompletedProcess[str]]:
    """(``python [flags] args``, ``python [flags] -m greensched args``)."""
    return (run(args, cwd, stdin, flags), run(["-m", "greensched", *args], cwd, stdin, flags))


def probe(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE ")]
    assert proc.returncode == 0 and len(lines) == 1, (proc.returncode, proc.stdout, proc.stderr)
    result: dict[str, Any] = json.loads(lines[0][len("PROBE "):])
    return result


def same_start(args: list[str], cwd: Path, stdin: str | None = None,
               flags: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run ``args`` both ways; assert the program saw the same; return what greensched's saw."""
    plain, green = both(args, cwd, stdin, flags)
    seen, green_seen = probe(plain), probe(green)
    assert not seen.pop("patched") and green_seen.pop("patched")
    assert green_seen == seen
    return green_seen


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A folder with the probe as a script, a module, a package with __main__, a folder app."""
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "script.py").write_text(PROBE)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__main__.py").write_text(PROBE)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "__main__.py").write_text(PROBE)
    (tmp_path / "pkg" / "tool.py").write_text(PROBE)
    return tmp_path


def test_dash_m_timeit_gets_its_own_options(work: Path) -> None:
    proc = run(["-m", "greensched", "-m", "timeit", "-n", "3", "-r", "1", "pass"], work)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("3 loops, best of 1:"), proc.stdout


def test_dash_m_module_gets_every_argument_after_it(work: Path) -> None:
    seen = same_start(["-m", "probe", "--flag", "-x", "value"], work)
    assert seen["argv"] == [str(work / "probe.py"), "--flag", "-x", "value"]
    assert seen["path0"] == str(work) and seen["spec"] == "probe" and seen["name"] == "__main__"
    assert seen["main_is_us"]


def test_dash_m_module_gets_dash_h_and_our_own_option_names(work: Path) -> None:
    seen = same_start(["-m", "probe", "-h", "--no-preempt", "--slice", "5", "-m", "x"], work)
    assert seen["argv"][1:] == ["-h", "--no-preempt", "--slice", "5", "-m", "x"]
    proc = run(["-m", "greensched", "-m", "json.tool", "-h"], work)  # the module's help, not ours
    assert proc.returncode == 0 and "json.tool" in proc.stdout and "greensched" not in proc.stdout


def test_dash_m_submodule_and_package(work: Path) -> None:
    tool = same_start(["-m", "pkg.tool", "a"], work)
    assert tool["spec"] == "pkg.tool" and tool["argv"] == [str(work / "pkg" / "tool.py"), "a"]
    package = same_start(["-m", "pkg", "b"], work)
    assert package["spec"] == "pkg.__main__" and package["argv"][1:] == ["b"]


def test_script_keeps_double_dash_and_dash_h(work: Path) -> None:
    seen = same_start(["sub/script.py", "--", "x", "-h"], work)
    assert seen["argv"] == ["sub/script.py", "--", "x", "-h"]
    assert seen["path0"] == str(work / "sub") and seen["spec"] is None
    assert seen["file"] == str(work / "sub" / "script.py")  # python makes it absolute


def test_script_after_double_dash_and_greensched_options(work: Path) -> None:
    proc = run(["-m", "greensched", "--no-preempt", "--slice=5", "--", "probe.py", "--no-preempt"], work)
    assert probe(proc)["argv"] == ["probe.py", "--no-preempt"]


def test_symlinked_script_gets_its_real_folder(work: Path) -> None:
    (work / "link.py").symlink_to(work / "sub" / "script.py")
    assert same_start(["link.py"], work)["path0"] == str(work / "sub")


def test_folder_with_a_main_module(work: Path) -> None:
    plain, green = both(["app", "arg"], work)
    seen, green_seen = probe(plain), probe(green)
    for key in ("argv", "spec", "name", "file", "main_is_us"):
        assert green_seen[key] == seen[key], key
    assert seen["argv"] == ["app", "arg"] and seen["spec"] == "__main__"
    # python puts the folder first on sys.path absolute, runpy as typed: the same folder.
    assert str(work / green_seen["path0"]) == seen["path0"] == str(work / "app")


def test_dash_c_code(work: Path) -> None:
    seen = same_start(["-c", PROBE, "a", "--", "-h"], work)
    assert seen["argv"] == ["-c", "a", "--", "-h"] and seen["path0"] == ""
    assert seen["spec"] is None and seen["file"] is None and seen["main_is_us"]


def test_stdin_program(work: Path) -> None:
    seen = same_start(["-", "a", "-x"], work, stdin=PROBE)
    assert seen["argv"] == ["-", "a", "-x"] and seen["path0"] == ""


@pytest.mark.parametrize("args", [["script.py"], ["-m", "probe"], ["-c", PROBE]])
def test_safe_path_puts_nothing_in_front(work: Path, args: list[str]) -> None:
    """``python -P``: sys.path starts with PYTHONPATH, not the script's or current folder."""
    seen = same_start(args, work / "sub", flags=("-P",))
    assert seen["path0"] == str(work)


@pytest.mark.parametrize("code, status", [
    ("raise SystemExit(3)", 3),
    ("import sys; sys.exit('bye')", 1),
    ("raise ValueError('boom')", 1),
    ("pass", 0),
])
def test_exit_status_is_the_programs(work: Path, code: str, status: int) -> None:
    (work / "ends.py").write_text(code + "\n")
    for proc in both(["ends.py"], work):
        assert proc.returncode == status, proc.stderr
    plain, green = both(["ends.py"], work)
    assert green.stderr == plain.stderr  # the traceback starts at the program, as python's does


def test_a_syntax_error_in_dash_c_reads_as_pythons(work: Path) -> None:
    plain, green = both(["-c", "x = ("], work)
    assert green.returncode == plain.returncode == 1
    assert green.stderr == plain.stderr


def _message(proc: subprocess.CompletedProcess[str]) -> str:
    """The one line of stderr, without the ``<program>: `` prefix."""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0].split(": ", 1)[1]


@pytest.mark.parametrize("args, python_status", [
    (["nosuch.py"], 2),
    (["nosuch_dir/"], 2),
    (["-m", "nosuch_module"], 1),
    (["-m", "json.nosuch"], 1),
    (["-m", "nosuch_package.tool"], 1),
    (["sub"], 1),  # a folder without __main__.py
    (["-m", "sub_package_without_main"], 1),
])
def test_a_missing_program_is_one_line_and_exit_2(work: Path, args: list[str], python_status: int) -> None:
    (work / "sub_package_without_main").mkdir()
    (work / "sub_package_without_main" / "__init__.py").write_text("")
    plain, green = both(args, work)
    assert plain.returncode == python_status, plain.stderr
    assert green.returncode == 2, green.stderr
    assert _message(green) == _message(plain)
    assert green.stderr.startswith("python -m greensched: ")


def test_no_program_and_bad_options_are_usage_errors(work: Path) -> None:
    for args, words in (([], "give the program to run"),
                        (["-m"], "argument expected for the -m option"),
                        (["--bogus", "probe.py"], "unrecognized arguments: --bogus")):
        proc = run(["-m", "greensched", *args], work)
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr


@pytest.mark.parametrize("value", ["fast", "-3", "0"])
def test_bad_slice_error_names_the_option_typed(work: Path, value: str) -> None:
    proc = run(["-m", "greensched", f"--slice={value}", "probe.py"], work)
    assert proc.returncode == 2, proc.stderr
    assert f"--slice={value!r}" in proc.stderr and "slice_ms" not in proc.stderr, proc.stderr


def test_bad_slice_in_the_environment_is_one_usage_error(work: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "greensched", "probe.py"], cwd=work,
                          env={**env(), "GREENSCHED_SLICE_MS": "fast"},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "GREENSCHED_SLICE_MS='fast'" in proc.stderr and "Traceback" not in proc.stderr


def test_help_and_version(work: Path) -> None:
    proc = run(["-m", "greensched", "--help"], work)
    assert proc.returncode == 0
    for words in ("-m MODULE", "-c CODE", "--slice", "--no-preempt", "--dump-signal",
                  "--blocking-threshold"):
        assert words in proc.stdout, proc.stdout
    version = run(["-m", "greensched", "--version"], work)
    assert version.returncode == 0 and version.stdout.startswith("greensched "), version.stdout
