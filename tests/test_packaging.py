"""The package as users get it: ``python -m build`` makes an sdist and a wheel; the wheel,
installed into a fresh virtual environment, has its metadata, licence and ``py.typed``, and
runs the main demo from a folder outside the checkout.

One module-scoped build and install (about 20 s here: the isolated build fetches setuptools
through pip, as any user's build does).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import greensched

# `once`: CI runs these on its first interpreter only (.ci/run):
# the sdist and wheel are the same for every version.
pytestmark = pytest.mark.once

REPO = Path(__file__).resolve().parent.parent


def clean_env() -> dict[str, str]:
    """No PYTHONPATH pointing at the checkout, no settings: only the installed package."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "GREENSCHED_PREEMPT", "GREENSCHED_SLICE_MS", "VIRTUAL_ENV")}
    return env


def check(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel, built from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    check([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], cwd=out)
    return out


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel (and greenlet) installed; its python."""
    env_dir = tmp_path_factory.mktemp("venv")
    (wheel,) = dist.glob("greensched-*.whl")
    # Without pip of its own (ensurepip takes seconds): this interpreter's pip installs
    # into it with --python (pip 22.3+); an older pip gets the venv its own pip.
    import pip

    own_pip = tuple(int(p) for p in pip.__version__.split(".")[:2]) < (22, 3)
    venv.create(env_dir, with_pip=own_pip)
    python = env_dir / "bin" / "python"
    installer = [str(python), "-m", "pip"] if own_pip else [sys.executable, "-m", "pip", "--python",
                                                            str(python)]
    check([*installer, "install", "-q", "--disable-pip-version-check", str(wheel)], cwd=env_dir)
    return python


def test_build_makes_an_sdist_and_a_wheel_with_the_licence_and_py_typed(dist: Path) -> None:
    (wheel,) = dist.glob(f"greensched-{greensched.__version__}-py3-none-any.whl")
    (sdist,) = dist.glob(f"greensched-{greensched.__version__}.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    assert "greensched/py.typed" in names and "greensched/__main__.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert not any(n.startswith(("tests/", "examples/")) for n in names), names
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    for needed in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "greensched/py.typed",
                   "examples/send_to_server.py", "tests/test_main.py", "docs/design.md"):
        assert needed in members, needed


def test_installed_metadata(installed: Path, tmp_path: Path) -> None:
    code = (
        "import json, importlib.metadata as md, importlib.resources as res, greensched\n"
        "m = md.metadata('greensched')\n"
        "dist = md.distribution('greensched')\n"
        "print(json.dumps({'version': m['Version'], 'module_version': greensched.__version__,\n"
        "  'file': greensched.__file__, 'license': m['License-Expression'],\n"
        "  'classifiers': m.get_all('Classifier'), 'urls': m.get_all('Project-URL'),\n"
        "  'requires_python': m['Requires-Python'], 'requires': m.get_all('Requires-Dist'),\n"
        "  'license_text': next(f for f in dist.files if f.name == 'LICENSE').read_text(),\n"
        "  'py_typed': res.files('greensched').joinpath('py.typed').is_file()}))\n"
    )
    info = json.loads(check([str(installed), "-c", code], cwd=tmp_path).stdout)
    assert info["version"] == info["module_version"] == greensched.__version__
    assert not info["file"].startswith(str(REPO)), info["file"]  # the installed copy
    assert info["license"] == "MIT" and info["license_text"].startswith("MIT License")
    assert info["py_typed"]
    for version in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in info["classifiers"]
    assert "Operating System :: POSIX :: Linux" in info["classifiers"]
    assert "Typing :: Typed" in info["classifiers"]
    urls = dict(u.split(", ", 1) for u in info["urls"])
    assert {"Source", "Documentation", "Changelog", "Issues"} <= set(urls), urls
    assert all(u.startswith("https://github.com/greensched/greensched") for u in urls.values())
    assert info["requires_python"] == ">=3.11"
    assert [r for r in info["requires"] if "extra ==" not in r] == ["greenlet>=3.0"]


def test_installed_package_runs_the_demo_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    """The README's demo, copied to a folder of its own and run with the installed package."""
    for name in ("send_to_server.py", "_servers.py"):
        shutil.copy(REPO / "examples" / name, tmp_path / name)
    proc = check([str(installed), "send_to_server.py", "--seconds", "2", "--clients", "20"],
                 cwd=tmp_path, timeout=120)
    summary = [line for line in proc.stdout.splitlines() if line.startswith("summary: ")]
    assert len(summary) == 1, proc.stdout
    fields = dict(f.split("=", 1) for f in summary[0].split()[1:])
    assert fields["errors"] == "0" and int(fields["requests"]) > 0, proc.stdout
    assert int(fields["preemptions"]) > 0, proc.stdout


def test_installed_launcher(installed: Path, tmp_path: Path) -> None:
    proc = check([str(installed), "-m", "greensched", "-m", "timeit", "-n", "3", "-r", "1", "pass"],
                 cwd=tmp_path)
    assert proc.stdout.startswith("3 loops"), proc.stdout
