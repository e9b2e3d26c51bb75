"""The mechanics around runs: alternation order, subprocesses, statistics and RSS.

Each (system, workload, repeat) runs in a fresh interpreter (``python -m benchmarks.worker``):
event loops, connection pools and caches never carry over between systems, and the peak RSS the
worker reports is one system's own.
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.spec import RunSpec

MIB = 1024 * 1024
#: The multiplication sign of ratios in reports ("1.30\u00d7"), kept in one place.
TIMES = "\u00d7"
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


# -- order ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One run in the suite's schedule."""

    repeat: int
    workload: str
    system: str


def schedule(
    workloads: Sequence[str], systems_of: Mapping[str, Sequence[str]], repeats: int
) -> list[Slot]:
    """The order of every run: repeats outermost, then workloads, then systems.

    Within a repeat every system of a workload runs back to back (side by side); the system
    order rotates by one each repeat, so no system is always first (cold broker) or last.
    """
    slots: list[Slot] = []
    for repeat in range(repeats):
        for workload in workloads:
            systems = list(systems_of[workload])
            if not systems:
                continue
            shift = repeat % len(systems)
            for system in systems[shift:] + systems[:shift]:
                slots.append(Slot(repeat, workload, system))
    return slots


# -- running one -----------------------------------------------------------------------------


def run_in_subprocess(spec: RunSpec, *, timeout: float, cwd: Path) -> dict[str, Any]:
    """Run ``spec`` in a fresh worker process and return its result.

    The result always has ``ok``; a crash, a timeout or a missing result file becomes
    ``ok: False`` with ``error`` saying why, so one bad run never stops the suite.
    """
    with tempfile.TemporaryDirectory(prefix="busline-bench-") as tmp:
        result_path = Path(tmp) / "result.json"
        command = [
            sys.executable,
            "-m",
            "benchmarks.worker",
            "--spec",
            spec.to_json(),
            "--result",
            str(result_path),
        ]
        try:
            proc = subprocess.run(
                command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"worker killed after {timeout:.0f}s"}
        if result_path.exists():
            result: dict[str, Any] = json.loads(result_path.read_text())
            if not result.get("ok") and proc.stderr:
                result["stderr"] = proc.stderr[-4000:]
            return result
        return {
            "ok": False,
            "error": f"worker exited with {proc.returncode} and no result",
            "stderr": proc.stderr[-4000:],
        }


# -- statistics --------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median (``nan`` for no values, so a failed system shows as missing, not zero)."""
    return statistics.median(values) if values else math.nan


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (``fraction`` in 0..1)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# -- memory ------------------------------------------------------------------------------------


def current_rss() -> int:
    """This process's resident set size now, in bytes (``/proc``; peak RSS as a fallback)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return peak_rss()


def peak_rss() -> int:
    """This process's peak resident set size so far, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak if sys.platform == "darwin" else peak * 1024
