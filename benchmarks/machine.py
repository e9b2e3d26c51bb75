"""Where and on what the suite ran: the git commit, the machine, library versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: Packages whose versions go into the report.
PACKAGES = ("busline", "aio-pika", "aiormq", "pamqp", "faststream", "pydantic", "msgspec", "uvloop")


def git_info(root: Path) -> dict[str, Any]:
    """The commit the working tree is on, and whether it has uncommitted changes (earlier
    results under ``benchmarks/results`` do not count: they change nothing that is measured)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(
            git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results")
        )
        subject = git("log", "-1", "--format=%s")
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "short": "unknown", "dirty": None, "subject": ""}
    return {"commit": commit, "short": commit[:10], "dirty": dirty, "subject": subject}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def machine_info() -> dict[str, Any]:
    """CPU, memory, OS and Python of this machine."""
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
    }


def versions() -> dict[str, str]:
    """Installed versions of the libraries under test."""
    found: dict[str, str] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
