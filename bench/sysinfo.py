"""Machine and package facts for the top of the report."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata

#: Distributions whose versions the report shows.
PACKAGES = ("greensched", "greenlet", "gevent", "eventlet", "uvloop", "requests", "urllib3")


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (or ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def os_release() -> str:
    """``PRETTY_NAME`` from ``/etc/os-release``, or the platform string."""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_revision(repo: str) -> str:
    """``<short sha>`` of the checkout, with ``+dirty`` when greensched/ has local changes."""
    try:
        sha = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "--no-optional-locks", "-C", repo, "status", "--porcelain",
                                "--", "greensched"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha or "unknown") + ("+dirty" if dirty else "")


def loadavg() -> str:
    """The 1/5/15-minute load averages."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine_lines(repo: str, nginx: str | None) -> list[str]:
    """Markdown bullet lines describing the machine, Python and packages."""
    uname = platform.uname()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    versions = ", ".join(f"{name} {package_version(name) or '(not installed)'}"
                         for name in PACKAGES)
    return [
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores ({affinity} usable)",
        f"- OS: {os_release()}, kernel {uname.release} ({uname.machine})",
        f"- Python: {platform.python_implementation()} {platform.python_version()} "
        f"({sys.executable})",
        f"- Packages: {versions}",
        f"- nginx: {nginx or 'not found'}",
        f"- greensched checkout: {git_revision(repo)}",
    ]
