"""``python -m benchmarks``: run every workload side by side and write the report.

The options are in :mod:`benchmarks.options`; this module checks that the servers and libraries
a run needs are there, runs the schedule (each run in a subprocess, see
:mod:`benchmarks.harness`), and hands the results to :mod:`benchmarks.report`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shlex
import sys
import time
import uuid
from dataclasses import replace
from typing import Any

from benchmarks.amqp_tools import server_version
from benchmarks.harness import TIMES, Slot, run_in_subprocess
from benchmarks.machine import git_info, machine_info, versions
from benchmarks.options import ROOT, parse, settings, specs_for
from benchmarks.report import render_markdown, write_reports
from benchmarks.spec import RunSpec
from benchmarks.stores import postgres_version
from benchmarks.summary import evaluate_goals, summarise
from benchmarks.systems import SYSTEMS
from benchmarks.workloads import PRIMARY_METRIC
from busline.urls import mask_url


def main(argv: list[str] | None = None) -> int:
    """Run the suite; exit 0 if every run succeeded, 1 if any failed, 2 on bad setup."""
    args = parse(argv)
    slots, templates = specs_for(args)
    if not slots:
        print("nothing to run: no selected system runs the selected workloads", file=sys.stderr)
        return 2
    servers = preflight(args, slots)
    if servers is None:
        return 2
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    # Read now: every worker imports the code afresh, so the commit at the start is the one the
    # runs measured, unless someone commits meanwhile (checked again at the end).
    git_start = git_info(ROOT)
    load_before = os.getloadavg()
    _warn_if_busy(load_before[0])
    print(
        f"busline benchmarks: {len(slots)} runs, broker {servers['broker'] or 'none'} at "
        f"{mask_url(args.amqp_url)}, results in {args.out}",
        file=sys.stderr,
    )
    clock = time.monotonic()
    runs = [
        run_slot(args, slot, templates[slot.workload], i, len(slots))
        for i, slot in enumerate(slots, 1)
    ]
    summary = summarise(runs)
    meta = {
        "started_at": started,
        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "wall_s": round(time.monotonic() - clock, 1),
        # 1-, 5- and 15-minute load averages: other work on the machine skews wall times.
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "git": git_start,
        "git_changed_during_run": git_info(ROOT) != git_start,
        "machine": machine_info(),
        "versions": versions(),
        "broker": servers["broker"],
        "amqp_url": mask_url(args.amqp_url),
        "database": servers["database"],
        "pg_url": mask_url(args.pg_url) if servers["database"] else None,
        "settings": settings(args),
        "command": "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv),
    }
    goals = [goal.as_dict() for goal in evaluate_goals(summary)]
    doc = {"meta": meta, "summary": summary, "goals": goals, "runs": runs}
    written = write_reports(doc, args.out, chart=not args.no_chart)
    print(render_markdown(doc))
    print("wrote " + ", ".join(str(path) for path in written), file=sys.stderr)
    failed = sum(1 for run in runs if not run.get("ok"))
    if failed:
        print(f"{failed} run(s) failed; see the report", file=sys.stderr)
    return 1 if failed else 0


def preflight(args: argparse.Namespace, slots: list[Slot]) -> dict[str, str | None] | None:
    """The broker's and the database's versions, or ``None`` (after saying why on stderr) when
    a library is missing or a server the runs need is not reachable: better now than after
    half an hour of runs."""
    missing = sorted({m for slot in slots for m in SYSTEMS[slot.system].missing()})
    if not args.no_chart and importlib.util.find_spec("matplotlib") is None:
        missing.append("matplotlib")
    if missing:
        print(
            f"not installed: {', '.join(missing)}. Install the bench extra: "
            "scripts/bootstrap.sh --bench (or pip install -e '.[bench]').",
            file=sys.stderr,
        )
        return None
    found: dict[str, str | None] = {"database": None, "broker": None}
    checks = (
        (
            "database",
            "postgres",
            postgres_version,
            args.pg_url,
            "PostgreSQL",
            "--pg-url, or leave out --systems busline-postgresql",
        ),
        (
            "broker",
            "broker",
            server_version,
            args.amqp_url,
            "RabbitMQ",
            "--amqp-url, or run only --systems busline-memory",
        ),
    )
    for key, needs, probe, url, name, advice in checks:
        if not any(getattr(SYSTEMS[slot.system], needs) for slot in slots):
            continue
        try:
            found[key] = asyncio.run(probe(url))
        except Exception as exc:
            print(
                f"{name} is not reachable at {mask_url(url)} ({exc!r}).\n"
                f"Start it with `scripts/services.sh start`, pass {advice}.",
                file=sys.stderr,
            )
            return None
    return found


def _warn_if_busy(load: float) -> None:
    cpus = os.cpu_count() or 1
    if load > cpus / 2:
        # Busy machine: the systems compete with other work for the CPU they are measured on.
        print(
            f"warning: load average {load:.1f} on {cpus} CPUs; wall-clock figures "
            "will be noisy (CPU µs/msg less so)",
            file=sys.stderr,
        )


def run_slot(
    args: argparse.Namespace, slot: Slot, template: RunSpec, index: int, total: int
) -> dict[str, Any]:
    """Run one slot in its own process (retried up to ``--retries`` times), showing progress."""
    # A fresh run id per attempt: its queues, store file and schema are its own, and whatever
    # a failed attempt left behind stays out of the next one.
    spec = replace(template, system=slot.system, n=SYSTEMS[slot.system].size(template.n))
    repeats = args.rss_repeats if slot.workload == "rss" else args.repeats
    print(
        f"[{index:>3}/{total}] repeat {slot.repeat + 1}/{repeats} "
        f"{slot.workload:<14} {slot.system:<27}",
        end=" ",
        file=sys.stderr,
        flush=True,
    )
    began = time.monotonic()
    # Wall-clock start, to line a failure up with broker logs (restarts by other users).
    run_started = time.strftime("%H:%M:%S", time.gmtime())
    attempt = replace(spec, run_id=uuid.uuid4().hex[:10])
    result = run_in_subprocess(attempt, timeout=args.run_timeout + 60, cwd=ROOT)
    for _ in range(max(0, args.retries)):
        if result.get("ok"):
            break
        print(f"{_describe(slot.workload, result)}; retrying", end=" ", file=sys.stderr)
        first_attempt = result
        attempt = replace(spec, run_id=uuid.uuid4().hex[:10])
        result = run_in_subprocess(attempt, timeout=args.run_timeout + 60, cwd=ROOT)
        result["retried_after"] = first_attempt.get("error")
        result["first_attempt_stderr"] = first_attempt.get("stderr", "")[-3000:]
    elapsed = time.monotonic() - began
    print(f"{_describe(slot.workload, result)}   ({elapsed:.1f} s)", file=sys.stderr, flush=True)
    return {
        "repeat": slot.repeat,
        "workload": slot.workload,
        "system": slot.system,
        "started_utc": run_started,
        **result,
    }


def _describe(workload: str, result: dict[str, Any]) -> str:
    """One line of progress: the run's headline figure, or why it failed."""
    if not result.get("ok"):
        return f"FAILED: {str(result.get('error', '?')).splitlines()[0][:200]}"
    metrics = result["metrics"]
    metric, _ = PRIMARY_METRIC[workload]
    if workload == "outbox-relay":
        text = (
            f"relay {metrics['relay_rate']:>7,.0f} msg/s, direct {metrics['direct_rate']:>7,.0f} "
            f"msg/s: {metrics['relay_vs_direct']:.2f}{TIMES}"
        )
    elif metric == "rate":
        text = f"{metrics['rate']:>10,.0f} msg/s  {metrics['cpu_us_per_msg']:>6,.0f} µs CPU/msg"
    elif metric == "p99_ms":
        text = f"p50 {metrics['p50_ms']:.2f} / p99 {metrics['p99_ms']:.2f} ms"
    else:
        text = (
            f"RSS {metrics['rss_start_mb']:.1f} → {metrics['rss_end_mb']:.1f} MB "
            f"({metrics['growth_mb']:+.1f})"
        )
    return f"{text}   peak RSS {result['peak_rss_mb']:.0f} MB"
