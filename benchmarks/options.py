"""The command line of ``python -m benchmarks``: its options, their checks, and the run specs
they make.

Every message count is a :data:`SIZES` entry, so that ``--quick`` shrinks each, the report
records each, and a new workload's size is one line here.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

from benchmarks.harness import Slot, schedule
from benchmarks.spec import DEFAULT_PG_URL, WORKLOAD_GROUPS, WORKLOADS, RunSpec
from benchmarks.systems import SYSTEMS, WORKLOAD_SYSTEMS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"

#: ``(option, default, the workload it sizes, help)`` of every message count; ``--quick`` takes
#: a tenth of each.
SIZES: tuple[tuple[str, int, str | None, str], ...] = (
    ("commands-n", 20_000, "commands", "commands measured"),
    ("events-n", 10_000, "events", "events published"),
    ("memory-n", 200_000, "memory", "memory workload size"),
    (
        "outbox-n",
        20_000,
        "outbox-relay",
        "outbox-relay: messages in the backlog the relay drains (and sent directly)",
    ),
    (
        "outbox-handler-n",
        2_000,
        "outbox-handler",
        "outbox-handler: commands whose handler writes a row and sends a command",
    ),
    (
        "saga-n",
        500,
        "saga",
        "saga: instances, each driven by a start and --saga-updates update commands",
    ),
    (
        "tracing-n",
        200_000,
        "tracing",
        "tracing (memory transport): commands; the SDK rows run a twentieth of them",
    ),
    ("tracing-rabbit-n", 5_000, "tracing-rabbit", "tracing-rabbit: commands"),
    ("rss-n", 200_000, "rss", "long run for RSS growth"),
    ("rss-warmup", 10_000, None, "messages before the long run's first RSS reading"),
    ("warmup", 500, None, "warm-up messages per run"),
)

#: The settings the report records (beside the sizes), so that its tables can say what ran.
RECORDED = (
    "repeats",
    "subscribers",
    "rate",
    "duration",
    "outbox_tx_size",
    "saga_updates",
    "rss_repeats",
)
RECORDED_AFTER = ("prefetch", "window", "quick")


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
    groups = "; ".join(f"{name} = {', '.join(items)}" for name, items in WORKLOAD_GROUPS.items())
    add = parser.add_argument
    # String defaults go through type= too.
    add(
        "--workloads",
        type=_workloads,
        default=",".join(WORKLOADS),
        help=f"comma-separated subset; groups: {groups}",
    )
    add("--systems", type=_csv, default=",".join(SYSTEMS), help="comma-separated subset")
    add("--repeats", type=int, default=3, help="repeats of each run (median)")
    add("--subscribers", type=int, default=3, help="subscribers per event")
    add("--rate", type=float, default=1000.0, help="latency: offered msg/s")
    add("--duration", type=float, default=5.0, help="latency: seconds measured")
    for name, default, _, text in SIZES:
        add(f"--{name}", type=int, default=default, help=text)
    add(
        "--outbox-tx-size",
        type=int,
        default=10,
        help="outbox-relay: messages per bus.transaction() when writing the backlog",
    )
    add(
        "--saga-updates",
        type=int,
        default=3,
        help="saga: update commands per instance after its start (not shrunk by --quick)",
    )
    add(
        "--rss-repeats",
        type=int,
        default=1,
        help="repeats of the long RSS run (one system, not a comparison)",
    )
    add("--prefetch", type=int, default=32, help="unacked messages per consumer")
    add("--window", type=int, default=64, help="publishes in flight")
    _add_run_options(parser)
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """Where the servers are, where the results go, and how runs are run."""
    add = parser.add_argument
    add(
        "--amqp-url",
        help="RabbitMQ to use (default: $BUSLINE_BENCH_AMQP_URL, else "
        "$BUSLINE_TEST_AMQP_URL, else amqp://guest:***@127.0.0.1:5672/)",
    )
    add(
        "--pg-url",
        help="PostgreSQL for the busline-postgresql rows; each run makes and drops "
        "a schema there (default: $BUSLINE_BENCH_PG_URL, else $BUSLINE_TEST_PG_URL, else "
        "postgresql://busline:***@127.0.0.1:5432/busline)",
    )
    add("--uvloop", action="store_true", help="run every system on uvloop")
    add(
        "--quick",
        action="store_true",
        help="a tenth of every size (a check, not a measurement), written to "
        "benchmarks/results/quick/ unless --out is given",
    )
    add("--run-timeout", type=float, default=600.0, help="seconds one run may take before it fails")
    add("--out", type=Path, help="where latest.{md,png,json} go (default: benchmarks/results)")
    add("--no-chart", action="store_true", help="skip the PNG")
    add(
        "--retries",
        type=int,
        default=1,
        help="re-run a failed run this many times (a broker restarted by someone else, say); "
        "the report marks retried runs",
    )


def env_url(flag: str | None, kind: str, default: str) -> str:
    """``flag`` if given, else ``$BUSLINE_BENCH_<kind>_URL``, ``$BUSLINE_TEST_<kind>_URL``, or
    ``default``. Resolved after parsing, so that ``--help`` never prints a password."""
    return (
        flag
        or os.environ.get(f"BUSLINE_BENCH_{kind}_URL")
        or os.environ.get(f"BUSLINE_TEST_{kind}_URL")
        or default
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse and check the command line; exits with status 2 on a bad option (argparse)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.amqp_url = env_url(args.amqp_url, "AMQP", DEFAULT_URL)
    args.pg_url = env_url(args.pg_url, "PG", DEFAULT_PG_URL)
    for name in args.workloads:
        if name not in WORKLOADS:
            choices = ", ".join([*WORKLOADS, *WORKLOAD_GROUPS])
            parser.error(f"unknown workload {name!r}; choose from {choices}")
    for name in args.systems:
        if name not in SYSTEMS:
            parser.error(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
    if args.repeats < 1 or args.rss_repeats < 1:
        parser.error("repeats must be at least 1")
    if args.outbox_tx_size < 1 or args.saga_updates < 1:
        parser.error("--outbox-tx-size and --saga-updates must be at least 1")
    if args.quick:
        for name, _, _, _ in SIZES:
            attr = name.replace("-", "_")
            setattr(args, attr, max(10, getattr(args, attr) // 10))
        args.duration = max(0.5, args.duration / 5)
    if args.out is None:
        # A quick run checks, it does not measure: its figures never replace the committed ones.
        args.out = RESULTS / "quick" if args.quick else RESULTS
    return args


def settings(args: argparse.Namespace) -> dict[str, object]:
    """What the report records of the options: every size and knob its tables mention."""
    names = [*RECORDED, *(name.replace("-", "_") for name, _, _, _ in SIZES), *RECORDED_AFTER]
    recorded: dict[str, object] = {name: getattr(args, name) for name in names}
    recorded["loop"] = "uvloop" if args.uvloop else "asyncio"
    return recorded


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
        "saga_updates": args.saga_updates,
        "uvloop": args.uvloop,
        "timeout": args.run_timeout,
    }
    sizes = {w: getattr(args, name.replace("-", "_")) for name, _, w, _ in SIZES if w}
    sizes["latency"] = max(1, round(args.rate * args.duration))
    templates = {w: RunSpec(w, "", n, **common) for w, n in sizes.items()}
    # The long run's warm-up is a size of its own (its first RSS reading comes after it).
    templates["rss"] = replace(templates["rss"], warmup=args.rss_warmup)
    side_by_side = [w for w in args.workloads if w != "rss"]
    slots = schedule(side_by_side, systems_of, args.repeats)
    if "rss" in args.workloads:
        slots += schedule(["rss"], systems_of, args.rss_repeats)
    return slots, templates
