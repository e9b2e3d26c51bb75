"""Profile one system on one workload and print where the time goes.

    python -m benchmarks.profiler busline-memory memory --n 200000
    python -m benchmarks.profiler busline commands --n 20000 --amqp-url amqp://...

With py-spy installed (``pip install py-spy``) the worker runs under ``py-spy record`` (a
sampling profiler outside the process: little overhead, the numbers stay close to a normal run)
and the report is built from its raw stacks. Without it, pyinstrument profiles the measured phase
in-process (more overhead; shapes are still right). Either way the files land in
``benchmarks/results/raw/profiles/``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks.options import DEFAULT_URL, RESULTS, ROOT, env_url
from benchmarks.spec import DEFAULT_PG_URL, WORKLOADS, RunSpec
from benchmarks.systems import SYSTEMS

OUT = RESULTS / "raw" / "profiles"

#: Stacks left out of the report: imports and start-up happen once per process, before the clock
#: starts, and would otherwise blur the per-message picture of a short run.
_STARTUP = re.compile(r"_find_and_load|\.start \((busline|benchmarks|transports)/")

# "function (path/to/file.py:123)" as py-spy writes frames in its raw (collapsed) format.
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _frame_key(frame: str) -> str:
    """``function (file)`` without the line number, so a function's lines add up."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    return f"{match['func']} ({match['file']})"


def _package(key: str) -> str:
    """The top-level package of a ``function (file)`` key: ``aiormq``, ``busline``, ..."""
    match = re.search(r"\(([^()/]+)/", key)
    if match:
        return match[1]
    return "<other>" if "(<" in key else key.rpartition("(")[2].rstrip(")")


def summarise_stacks(raw: str, top: int = 25) -> str:
    """A text report from py-spy's collapsed stacks: self time, and inclusive time of busline
    and transport functions, each as a share of the samples outside start-up."""
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        if _STARTUP.search(stack):
            continue
        total += count
        frames = [_frame_key(frame) for frame in stack.split(";")]
        own[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for key in set(frames):
            inclusive[key] += count
    if not total:
        return "no samples"

    def share(counter: Counter[str], keep: str | None = None) -> list[str]:
        rows = [
            f"{100 * n / total:6.1f}%  {key}"
            for key, n in counter.most_common()
            if keep is None or re.search(keep, key)
        ]
        return rows[:top]

    return "\n".join(
        [
            f"{total} samples (start-up and imports left out)",
            "",
            "self time by package (where the CPU goes):",
            *share(packages),
            "",
            "self time (the function's own code, any module):",
            *share(own),
            "",
            "inclusive time, busline and transports only:",
            *share(inclusive, r"\((busline|transports)/"),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run one profiled worker and print the summary."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiler")
    parser.add_argument("system", choices=list(SYSTEMS))
    parser.add_argument("workload", choices=list(WORKLOADS))
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--amqp-url", default=env_url(None, "AMQP", DEFAULT_URL))
    parser.add_argument("--pg-url", default=env_url(None, "PG", DEFAULT_PG_URL))
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--pyinstrument", action="store_true", help="even if py-spy is there")
    args = parser.parse_args(argv)

    OUT.mkdir(parents=True, exist_ok=True)
    stem = OUT / f"{args.system}-{args.workload}"
    py_spy = None if args.pyinstrument else _find_py_spy()
    spec = RunSpec(
        args.workload,
        args.system,
        args.n,
        rate=args.rate,
        amqp_url=args.amqp_url,
        pg_url=args.pg_url,
        profile_path=None if py_spy else str(stem),
    )
    with tempfile.TemporaryDirectory() as tmp:
        result_path = Path(tmp) / "result.json"
        worker = [sys.executable, "-m", "benchmarks.worker", "--spec", spec.to_json()]
        worker += ["--result", str(result_path)]
        if py_spy:
            raw_path = stem.with_suffix(".collapsed.txt")
            command = [py_spy, "record", "--format", "raw", "--rate", "1000", "--nolineno"]
            command += ["--output", str(raw_path), "--", *worker]
            subprocess.run(command, cwd=ROOT, check=False, capture_output=True, timeout=3600)
            report = summarise_stacks(raw_path.read_text()) if raw_path.exists() else "no profile"
        else:
            subprocess.run(worker, cwd=ROOT, check=False, timeout=3600)
            report = stem.with_suffix(".txt").read_text()
        result = json.loads(result_path.read_text()) if result_path.exists() else {}
    print(report)
    print()
    print(json.dumps(result.get("metrics") or result, indent=1)[:2000])
    print(f"\nfiles: {stem}.*", file=sys.stderr)
    return 0 if result.get("ok") else 1


def _find_py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


if __name__ == "__main__":
    sys.exit(main())
