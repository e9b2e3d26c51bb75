"""``python -m benchmarks``: run every workload side by side and write the report."""

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
from pathlib import Path
from typing import Any

from benchmarks.amqp_tools import server_version
from benchmarks.harness import TIMES, Slot, run_in_subprocess, schedule
from benchmarks.machine import git_info, machine_info, versions
from benchmarks.report import render_markdown, write_reports
from benchmarks.spec import DEFAULT_PG_URL, WORKLOAD_GROUPS, WORKLOADS, RunSpec
from benchmarks.stores import postgres_version
from benchmarks.summary import evaluate_goals, summarise
from benchmarks.systems import SYSTEMS, WORKLOAD_SYSTEMS
from benchmarks.workloads import PRIMARY_METRIC
from busline.urls import mask_url

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _workloads(value: str) -> list[str]:
    """Comma-separated workload names, groups (``outbox``) expanded, in the suite's order."""
    names: list[str] = []
    for item in _csv(value):
        names.extend(WORKLOAD_GROUPS.get(item, (item,)))
    known = [name for name in WORKLOADS if name in names]
    return known + [name for name in dict.fromkeys(names) if name not in WORKLOADS]


def build_parser() -> argparse.ArgumentParser:
    """The command line, with the issue's defaults."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="busline side by side with plain aio-pika and FastStream.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--workloads",
        type=_workloads,
        default=",".join(WORKLOADS),  # a string default goes through type= too
        help="comma-separated subset; groups: "
        + "; ".join(f"{name} = {', '.join(members)}" for name, members in WORKLOAD_GROUPS.items()),
    )
    parser.add_argument(
        "--systems",
        type=_csv,
        default=",".join(SYSTEMS),
        help="comma-separated subset",
    )
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each run (median)")
    parser.add_argument("--commands-n", type=int, default=20_000, help="commands measured")
    parser.add_argument("--events-n", type=int, default=10_000, help="events published")
    parser.add_argument("--subscribers", type=int, default=3, help="subscribers per event")
    parser.add_argument("--rate", type=float, default=1000.0, help="latency: offered msg/s")
    parser.add_argument("--duration", type=float, default=5.0, help="latency: seconds measured")
    parser.add_argument("--memory-n", type=int, default=200_000, help="memory workload size")
    parser.add_argument(
        "--outbox-n",
        type=int,
        default=20_000,
        help="outbox-relay: messages in the backlog the relay drains (and sent directly)",
    )
    parser.add_argument(
        "--outbox-tx-size",
        type=int,
        default=10,
        help="outbox-relay: messages per bus.transaction() when writing the backlog",
    )
    parser.add_argument(
        "--outbox-handler-n",
        type=int,
        default=2_000,
        help="outbox-handler: commands whose handler writes a row and sends a command",
    )
    parser.add_argument(
        "--tracing-n",
        type=int,
        default=200_000,
        help="tracing (memory transport): commands; the SDK rows run a twentieth of them",
    )
    parser.add_argument(
        "--tracing-rabbit-n", type=int, default=5_000, help="tracing-rabbit: commands"
    )
    parser.add_argument("--rss-n", type=int, default=200_000, help="long run for RSS growth")
    parser.add_argument(
        "--rss-warmup",
        type=int,
        default=10_000,
        help="messages before the long run's first RSS reading",
    )
    parser.add_argument(
        "--rss-repeats",
        type=int,
        default=1,
        help="repeats of the long RSS run (one system, not a comparison)",
    )
    parser.add_argument("--warmup", type=int, default=500, help="warm-up messages per run")
    parser.add_argument("--prefetch", type=int, default=32, help="unacked messages per consumer")
    parser.add_argument("--window", type=int, default=64, help="publishes in flight")
    parser.add_argument(
        "--amqp-url",
        default=None,
        help="RabbitMQ to use (default: $BUSLINE_BENCH_AMQP_URL, else $BUSLINE_TEST_AMQP_URL, "
        "else amqp://guest:***@127.0.0.1:5672/)",
    )
    parser.add_argument(
        "--pg-url",
        default=None,
        help="PostgreSQL for the busline-postgresql rows; each run makes and drops a schema "
        "there (default: $BUSLINE_BENCH_PG_URL, else $BUSLINE_TEST_PG_URL, else "
        "postgresql://busline:***@127.0.0.1:5432/busline)",
    )
    parser.add_argument("--uvloop", action="store_true", help="run every system on uvloop")
    parser.add_argument(
        "--quick", action="store_true", help="a tenth of every size (a check, not a measurement)"
    )
    parser.add_argument(
        "--run-timeout", type=float, default=600.0, help="seconds one run may take before it fails"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results",
        help="where latest.{json,md,png} go",
    )
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG")
    parser.add_argument(
        "--retries",
        type=int,
        default=1,
        help="re-run a failed run this many times (a broker restarted by someone else, say); "
        "the report marks retried runs",
    )
    return parser


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    # Resolved here, not as the argparse default, so --help never prints a password.
    args.amqp_url = (
        args.amqp_url
        or os.environ.get("BUSLINE_BENCH_AMQP_URL")
        or os.environ.get("BUSLINE_TEST_AMQP_URL")
        or DEFAULT_URL
    )
    args.pg_url = (
        args.pg_url
        or os.environ.get("BUSLINE_BENCH_PG_URL")
        or os.environ.get("BUSLINE_TEST_PG_URL")
        or DEFAULT_PG_URL
    )
    for name in args.workloads:
        if name not in WORKLOADS:
            choices = ", ".join([*WORKLOADS, *WORKLOAD_GROUPS])
            parser.error(f"unknown workload {name!r}; choose from {choices}")
    for name in args.systems:
        if name not in SYSTEMS:
            parser.error(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
    if args.repeats < 1 or args.rss_repeats < 1:
        parser.error("repeats must be at least 1")
    if args.outbox_tx_size < 1:
        parser.error("--outbox-tx-size must be at least 1")
    if args.quick:
        for attr in (
            "commands_n",
            "events_n",
            "memory_n",
            "outbox_n",
            "outbox_handler_n",
            "tracing_n",
            "tracing_rabbit_n",
            "rss_n",
            "rss_warmup",
            "warmup",
        ):
            setattr(args, attr, max(10, getattr(args, attr) // 10))
        args.duration = max(0.5, args.duration / 5)


def specs_for(args: argparse.Namespace) -> tuple[list[Slot], dict[str, RunSpec]]:
    """The schedule, and one template spec per workload (the system is filled in per run)."""
    systems_of = {
        workload: [s for s in WORKLOAD_SYSTEMS[workload] if s in args.systems]
        for workload in args.workloads
    }
    common = {
        "warmup": args.warmup,
        "window": args.window,
        "prefetch": args.prefetch,
        "subscribers": args.subscribers,
        "rate": args.rate,
        "amqp_url": args.amqp_url,
        "pg_url": args.pg_url,
        "outbox_tx_size": args.outbox_tx_size,
        "uvloop": args.uvloop,
        "timeout": args.run_timeout,
    }
    templates = {
        "commands": RunSpec("commands", "", args.commands_n, **common),
        "events": RunSpec("events", "", args.events_n, **common),
        "latency": RunSpec("latency", "", max(1, round(args.rate * args.duration)), **common),
        "memory": RunSpec("memory", "", args.memory_n, **common),
        "outbox-relay": RunSpec("outbox-relay", "", args.outbox_n, **common),
        "outbox-handler": RunSpec("outbox-handler", "", args.outbox_handler_n, **common),
        "tracing": RunSpec("tracing", "", args.tracing_n, **common),
        "tracing-rabbit": RunSpec("tracing-rabbit", "", args.tracing_rabbit_n, **common),
        "rss": RunSpec("rss", "", args.rss_n, **{**common, "warmup": args.rss_warmup}),
    }
    side_by_side = [w for w in args.workloads if w != "rss"]
    slots = schedule(side_by_side, systems_of, args.repeats)
    if "rss" in args.workloads:
        slots += schedule(["rss"], systems_of, args.rss_repeats)
    return slots, templates


def _describe(workload: str, result: dict[str, Any]) -> str:
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


def main(argv: list[str] | None = None) -> int:
    """Run the suite; exit 0 if every run succeeded, 1 if any failed, 2 on bad setup."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(parser, args)
    slots, templates = specs_for(args)
    if not slots:
        parser.error("nothing to run: no selected system runs the selected workloads")

    missing = sorted({m for slot in slots for m in SYSTEMS[slot.system].missing()})
    if not args.no_chart and importlib.util.find_spec("matplotlib") is None:
        missing.append("matplotlib")
    if missing:
        print(
            f"not installed: {', '.join(missing)}. Install the bench extra: "
            "scripts/bootstrap.sh --bench (or pip install -e '.[bench]').",
            file=sys.stderr,
        )
        return 2

    database = None
    if any(SYSTEMS[slot.system].postgres for slot in slots):
        try:
            database = asyncio.run(postgres_version(args.pg_url))
        except Exception as exc:
            print(
                f"PostgreSQL is not reachable at {mask_url(args.pg_url)} ({exc!r}).\n"
                "Start it with `scripts/services.sh start`, pass --pg-url, or leave out "
                "--systems busline-postgresql.",
                file=sys.stderr,
            )
            return 2

    broker = None
    if any(SYSTEMS[slot.system].broker for slot in slots):
        try:
            broker = asyncio.run(server_version(args.amqp_url))
        except Exception as exc:
            print(
                f"RabbitMQ is not reachable at {mask_url(args.amqp_url)} ({exc!r}).\n"
                "Start it with `scripts/services.sh start`, pass --amqp-url, or run only "
                "--systems busline-memory.",
                file=sys.stderr,
            )
            return 2

    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    # Read now: every worker imports the code afresh, so the commit at the start is the one the
    # runs measured, unless someone commits meanwhile (checked again at the end).
    git_start = git_info(ROOT)
    load_before = os.getloadavg()
    cpus = os.cpu_count() or 1
    if load_before[0] > cpus / 2:
        # Busy machine: the systems compete with other work for the CPU they are measured on.
        print(
            f"warning: load average {load_before[0]:.1f} on {cpus} CPUs; wall-clock figures "
            "will be noisy (CPU µs/msg less so)",
            file=sys.stderr,
        )
    print(
        f"busline benchmarks: {len(slots)} runs, broker {broker or 'none'} at "
        f"{mask_url(args.amqp_url)}, results in {args.out}",
        file=sys.stderr,
    )
    runs: list[dict[str, Any]] = []
    clock = time.monotonic()
    for index, slot in enumerate(slots, 1):
        template = templates[slot.workload]
        # A fresh run id per run: its queues, store file and schema are its own.
        spec = replace(
            template,
            system=slot.system,
            n=SYSTEMS[slot.system].size(template.n),
            run_id=uuid.uuid4().hex[:10],
        )
        repeats = args.rss_repeats if slot.workload == "rss" else args.repeats
        prefix = (
            f"[{index:>3}/{len(slots)}] repeat {slot.repeat + 1}/{repeats} "
            f"{slot.workload:<14} {slot.system:<27}"
        )
        print(prefix, end=" ", file=sys.stderr, flush=True)
        began = time.monotonic()
        # Wall-clock start, to line a failure up with broker logs (restarts by other users).
        run_started = time.strftime("%H:%M:%S", time.gmtime())
        result = run_in_subprocess(spec, timeout=args.run_timeout + 60, cwd=ROOT)
        for _ in range(max(0, args.retries)):
            if result.get("ok"):
                break
            print(f"{_describe(slot.workload, result)}; retrying", end=" ", file=sys.stderr)
            first_attempt = result
            # New names: whatever the failed attempt left (queues, a schema) stays out of it.
            spec = replace(spec, run_id=uuid.uuid4().hex[:10])
            result = run_in_subprocess(spec, timeout=args.run_timeout + 60, cwd=ROOT)
            result["retried_after"] = first_attempt.get("error")
            result["first_attempt_stderr"] = first_attempt.get("stderr", "")[-3000:]
        print(
            f"{_describe(slot.workload, result)}   ({time.monotonic() - began:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
        runs.append(
            {
                "repeat": slot.repeat,
                "workload": slot.workload,
                "system": slot.system,
                "started_utc": run_started,
                **result,
            }
        )

    summary = summarise(runs)
    settings = {
        key: getattr(args, key)
        for key in (
            "repeats",
            "commands_n",
            "events_n",
            "subscribers",
            "rate",
            "duration",
            "memory_n",
            "outbox_n",
            "outbox_tx_size",
            "outbox_handler_n",
            "tracing_n",
            "tracing_rabbit_n",
            "rss_n",
            "rss_warmup",
            "rss_repeats",
            "warmup",
            "prefetch",
            "window",
            "quick",
        )
    }
    settings["loop"] = "uvloop" if args.uvloop else "asyncio"
    doc = {
        "meta": {
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
            "broker": broker,
            "amqp_url": mask_url(args.amqp_url),
            "database": database,
            "pg_url": mask_url(args.pg_url) if database else None,
            "settings": settings,
            "command": "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv),
        },
        "summary": summary,
        "goals": [goal.as_dict() for goal in evaluate_goals(summary)],
        "runs": runs,
    }
    written = write_reports(doc, args.out, chart=not args.no_chart)
    print(render_markdown(doc))
    print("wrote " + ", ".join(str(path) for path in written), file=sys.stderr)
    failed = sum(1 for run in runs if not run.get("ok"))
    if failed:
        print(f"{failed} run(s) failed; see the report", file=sys.stderr)
    return 1 if failed else 0
