"""The front door stays true: README's size, its commands and examples, and every link in the docs.

The README's ``python`` blocks run in fresh interpreters (they own SIGALRM and patch the
stdlib) and must print what their comments say. Its test command must be the one CI runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
TEST_COMMAND = ".venv/bin/python -m pytest -q"


def readme_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def run_block(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENSCHED_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60, cwd=REPO, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{code}\n--- stderr ---\n{proc.stderr}"
    assert proc.stdout.strip(), f"a README example that prints nothing:\n{code}"
    return proc.stdout


def test_readme_is_at_most_10_kb() -> None:
    assert len(README.read_bytes()) <= 10 * 1024


def test_readme_commands_are_the_ones_ci_and_the_demo_use() -> None:
    text = README.read_text()
    assert f"python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && {TEST_COMMAND}\n" in text
    assert ".venv/bin/pip install -e . && .venv/bin/python examples/send_to_server.py\n" in text
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r'"\$\(venv_for "\$version"\)/bin/python" -m pytest -q\n', ci), \
        "CI must run the README's test command"
    assert (REPO / "examples" / "send_to_server.py").is_file()


def test_readme_examples_run_and_print_their_results() -> None:
    spawn, patched, preemption = readme_blocks()
    assert run_block(spawn).strip() == str(sum(n * n for n in range(1000)))
    out = run_block(patched)
    assert re.fullmatch(r"\{b'hello'\} 100 requests in \d+\.\d s\n", out), out
    # 100 requests of 0.5 s each: ~0.6 s concurrently, 50 s one after the other.
    assert float(out.split(" in ")[1].split()[0]) < 20, out
    out = run_block(preemption)
    ticks = int(out.split()[0])
    # ~60-90 ticks of 10 ms in 1 s here; 0 without preemption (the hog runs first, to the end).
    assert ticks >= 5, out


def _links(path: Path) -> list[str]:
    return [m for m in re.findall(r"\]\(([^)]+)\)", path.read_text())
            if not m.startswith(("http://", "https://", "#", "mailto:"))]


@pytest.mark.parametrize("page", [README, *sorted((REPO / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_every_relative_link_points_at_a_file(page: Path) -> None:
    for link in _links(page):
        target = (page.parent / link.split("#", 1)[0]).resolve()
        assert target.exists(), f"{page.name}: broken link {link}"


def test_design_sections_cited_from_code_exist() -> None:
    """``docs/design.md §N`` in code, tests and bench names a section that is there."""
    sections = set(re.findall(r"^## (\d+)\. ", (REPO / "docs" / "design.md").read_text(), re.M))
    cited: set[str] = set()
    for folder in ("greensched", "tests", "bench", "tools", "examples"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".py", ".md") and path.is_file():
                cited.update(re.findall(r"docs/design\.md §(\d+)", path.read_text(errors="replace")))
    assert cited, "nothing cites docs/design.md any more: drop this test or the page"
    assert cited <= sections, f"cited sections missing from docs/design.md: {sorted(cited - sections)}"
    old = "DESIGN" + ".md"  # the shared design page outside the project (spelled apart: this file)
    for folder in ("greensched", "tests", "bench", "tools"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".py", ".md") and path.is_file():
                assert old not in path.read_text(errors="replace"), f"{path}: cite docs/design.md"


def test_changelog_is_keep_a_changelog() -> None:
    """One Unreleased section on top, each kind of change under one heading per release."""
    text = (REPO / "CHANGELOG.md").read_text()
    releases = re.split(r"(?m)^## ", text)[1:]
    assert releases and releases[0].startswith("[Unreleased]"), "the top section is [Unreleased]"
    kinds = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
    for release in releases:
        headings = re.findall(r"(?m)^### (.+)$", release)
        assert set(headings) <= kinds, (release.split("\n", 1)[0], headings)
        assert len(headings) == len(set(headings)), f"a heading twice in {release.split(chr(10), 1)[0]}"
