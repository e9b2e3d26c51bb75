"""Smoke run of the benchmark suite (benchmarks/) with tiny sizes.

Every workload runs once on every system that takes part in it, in-process and small, and must
succeed: a system that errors, loses a message, delivers one twice or leaves one unacked on the
broker fails its case (the outbox workloads also check the database and the queues they fill).
The command line runs end to end too, down to the report files. Nothing here judges speed: the
goals are reported by the suite, not asserted. RabbitMQ comes from the ``amqp_url`` fixture (a
fresh vhost), PostgreSQL from ``tests.servers.postgres_url()`` (each run makes its own schema).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.cli import build_parser
from benchmarks.harness import schedule
from benchmarks.spec import RunSpec
from benchmarks.summary import evaluate_goals, summarise
from benchmarks.systems import SYSTEMS, WORKLOAD_SYSTEMS
from benchmarks.worker import execute
from benchmarks.workloads import PRIMARY_METRIC

ROOT = Path(__file__).resolve().parent.parent

#: Per workload: messages measured. Enough to exercise every path, small enough to be quick.
TINY = {
    "commands": 40,
    "events": 20,
    "latency": 40,
    "memory": 300,
    "outbox-relay": 30,
    "outbox-handler": 20,
    "tracing": 300,
    "tracing-rabbit": 40,
    "rss": 60,
}


def _require(*modules: str) -> None:
    """Skip (locally) or fail (in CI) when the ``bench`` extra is not installed."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        reason = (
            f"{', '.join(missing)} not installed: the benchmark smoke test needs the bench "
            f"extra (scripts/bootstrap.sh --bench)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def _cases() -> list[Any]:
    cases = []
    for workload, systems in WORKLOAD_SYSTEMS.items():
        for system in systems:
            info = SYSTEMS[system]
            marks = [pytest.mark.rabbitmq] if info.broker else []
            if info.postgres:
                marks.append(pytest.mark.postgres)
            cases.append(pytest.param(workload, system, id=f"{workload}-{system}", marks=marks))
    return cases


@pytest.mark.parametrize(("workload", "system"), _cases())
async def test_every_workload_runs_on_every_system(
    workload: str, system: str, request: pytest.FixtureRequest
) -> None:
    info = SYSTEMS[system]
    _require(*info.requires)
    url = request.getfixturevalue("amqp_url") if info.broker else "amqp://unused/"
    pg_url = _postgres_url() if info.postgres else "postgresql://unused/"
    spec = RunSpec(
        workload,
        system,
        n=TINY[workload],
        warmup=10,
        window=8,
        prefetch=8,
        rate=4000.0,  # 40 latency messages in 10 ms: the pacing path runs, the test stays short
        rss_samples=3,
        amqp_url=url,
        pg_url=pg_url,
        outbox_tx_size=4,  # several transactions, the last one short
        timeout=30.0,
    )
    result = await execute(spec)

    assert result["ok"]
    metrics = result["metrics"]
    value = metrics[PRIMARY_METRIC[workload][0]]
    assert math.isfinite(value)
    assert metrics["duplicates"] == 0
    assert metrics["unexpected"] == 0
    assert result["peak_rss_mb"] > 0
    if workload == "outbox-relay":
        assert metrics["relay_rate"] > 0 and metrics["direct_rate"] > 0
    if workload.startswith("tracing"):
        # Tracing is installed exactly when an SDK is given, and then every message leaves a
        # send and a process span (none dropped at this size).
        with_sdk = dict(info.options).get("telemetry", "auto").startswith("sdk")
        assert metrics["traced"] is with_sdk
        if with_sdk:
            assert metrics["spans_per_msg"] == pytest.approx(2.0)


def _postgres_url() -> str:
    """The test PostgreSQL (skips locally, fails in CI, when it is not reachable)."""
    from tests import servers

    return servers.postgres_url()


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


TINY_CLI = (
    "--repeats", "1", "--warmup", "10", "--commands-n", "40", "--events-n", "20",
    "--duration", "0.02", "--rate", "2000", "--memory-n", "300", "--rss-n", "60",
    "--rss-warmup", "10", "--outbox-n", "30", "--outbox-tx-size", "4",
    "--outbox-handler-n", "20", "--tracing-n", "2000", "--tracing-rabbit-n", "40",
)  # fmt: skip

#: The in-process systems: every workload that needs no broker runs on some of them.
MEMORY_SYSTEMS = ("busline-memory", "busline-memory-untraced", "busline-memory-otel")


def test_command_line_writes_the_reports(tmp_path: Path) -> None:
    _require("matplotlib", "opentelemetry.sdk")
    systems = ",".join(MEMORY_SYSTEMS)
    proc = _run_cli(*TINY_CLI, "--systems", systems, "--out", str(tmp_path))

    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "latest.json").read_text())
    in_process = {w for w, names in WORKLOAD_SYSTEMS.items() if set(names) & set(MEMORY_SYSTEMS)}
    assert {run["workload"] for run in doc["runs"]} == in_process
    assert all(run["ok"] for run in doc["runs"])
    assert doc["meta"]["git"]["commit"]
    assert doc["meta"]["machine"]["cpus"]
    # The SDK row ran a twentieth of the messages (it is that much slower).
    [sdk_run] = [run for run in doc["runs"] if run["system"] == "busline-memory-otel"]
    assert sdk_run["metrics"]["messages"] == 100
    tracing = doc["summary"]["tracing"]
    assert tracing["busline-memory-untraced"]["vs_baseline"] == pytest.approx(1.0)
    goals = {goal["goal"]: goal for goal in doc["goals"]}
    assert goals["tracing overhead with no SDK, memory transport (issue 6)"]["passed"] in (
        True,
        False,
    )
    markdown = (tmp_path / "latest.md").read_text()
    assert "## In-process: memory transport" in markdown
    assert "## Tracing overhead: memory transport" in markdown
    assert "## Goals" in markdown
    assert (tmp_path / "latest.png").read_bytes().startswith(b"\x89PNG")
    assert "[  1/" in proc.stderr  # progress is shown


@pytest.mark.rabbitmq
def test_command_line_compares_with_plain_aio_pika(amqp_url: str, tmp_path: Path) -> None:
    _require("aio_pika", "aiormq")
    proc = _run_cli(
        *TINY_CLI,
        "--workloads", "commands",
        "--systems", "aio-pika,busline",
        "--amqp-url", amqp_url,
        "--out", str(tmp_path),
        "--no-chart",
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "latest.json").read_text())
    rows = doc["summary"]["commands"]
    assert rows["aio-pika"]["vs_baseline"] == pytest.approx(1.0)
    assert rows["busline"]["vs_baseline"] > 0
    goal = doc["goals"][0]
    assert goal["goal"].startswith("commands end to end: busline vs plain aio-pika")
    assert goal["passed"] in (True, False)
    assert doc["meta"]["broker"].startswith("RabbitMQ")


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_command_line_runs_the_outbox_workloads(amqp_url: str, tmp_path: Path) -> None:
    _require("aiormq", "aiosqlite", "asyncpg", "matplotlib")
    proc = _run_cli(
        *TINY_CLI,
        "--workloads", "outbox",
        "--systems", "busline,busline-sqlite,busline-postgresql",
        "--amqp-url", amqp_url,
        "--pg-url", _postgres_url(),
        "--out", str(tmp_path),
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert set(doc["summary"]) == {"outbox-relay", "outbox-handler"}
    assert set(doc["summary"]["outbox-relay"]) == {"busline-sqlite", "busline-postgresql"}
    handler = doc["summary"]["outbox-handler"]
    assert handler["busline"]["vs_baseline"] == pytest.approx(1.0)
    assert handler["busline-postgresql"]["vs_baseline"] > 0
    goals = {goal["goal"]: goal for goal in doc["goals"]}
    assert goals["outbox relay vs direct publish, PostgreSQL (issue 5)"]["passed"] in (True, False)
    assert doc["meta"]["database"].startswith("PostgreSQL")
    markdown = (tmp_path / "latest.md").read_text()
    assert "## Outbox relay vs direct publish" in markdown
    assert "## Handler with the outbox" in markdown
    assert (tmp_path / "latest.png").read_bytes().startswith(b"\x89PNG")


def test_workload_groups_expand_in_suite_order() -> None:
    args = build_parser().parse_args(["--workloads", "tracing,outbox"])

    assert args.workloads == ["outbox-relay", "outbox-handler", "tracing"]


def test_schedule_alternates_and_rotates() -> None:
    slots = schedule(["commands"], {"commands": ["a", "b", "c"]}, repeats=3)

    orders = [[s.system for s in slots if s.repeat == r] for r in range(3)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]


def bench_run(workload: str, system: str, **metrics: float) -> dict[str, Any]:
    """One successful run's record, as the harness writes it."""
    return {
        "workload": workload,
        "system": system,
        "repeat": 0,
        "ok": True,
        "peak_rss_mb": 30.0,
        "metrics": metrics,
    }


def test_goals_report_pass_miss_and_not_measured() -> None:
    runs = [
        bench_run("commands", "aio-pika", rate=1000.0, elapsed_s=1.0),
        bench_run("commands", "faststream", rate=800.0, elapsed_s=1.0),
        bench_run("commands", "busline", rate=1500.0, elapsed_s=1.0),
    ]
    summary = summarise(runs)
    goals = {goal.goal: goal for goal in evaluate_goals(summary)}

    assert summary["commands"]["busline"]["vs_baseline"] == pytest.approx(1.5)
    vs_pika = goals["commands end to end: busline vs plain aio-pika"]
    assert vs_pika.passed is True
    assert vs_pika.margin_pct == pytest.approx((1.5 / 1.3 - 1) * 100)
    vs_faststream = goals["commands end to end: busline vs FastStream"]
    assert vs_faststream.passed is False
    assert vs_faststream.margin_pct == pytest.approx((1.875 / 2.0 - 1) * 100)
    assert goals["memory transport, full stack"].passed is None


def test_outbox_and_tracing_goals() -> None:
    runs = [
        bench_run("outbox-relay", "busline-postgresql", relay_vs_direct=0.5),
        bench_run("outbox-relay", "busline-sqlite", relay_vs_direct=0.9),
        bench_run("tracing", "busline-memory-untraced", rate=100_000.0, traced=False),
        bench_run("tracing", "busline-memory", rate=97_000.0, traced=False),
        bench_run("tracing", "busline-memory-otel", rate=8_000.0, traced=True),
    ]
    summary = summarise(runs)
    goals = {goal.goal: goal for goal in evaluate_goals(summary)}

    relay = goals["outbox relay vs direct publish, PostgreSQL (issue 5)"]
    assert relay.passed is False  # SQLite's 0.9 does not count: the target is PostgreSQL's
    assert relay.margin_pct == pytest.approx((0.5 / 0.8 - 1) * 100)
    overhead = goals["tracing overhead with no SDK, memory transport (issue 6)"]
    assert overhead.passed is True
    assert overhead.measured == "3.0%"
    # Ratios of the tracing rows are against tracing=False, not aio-pika.
    assert summary["tracing"]["busline-memory-otel"]["vs_baseline"] == pytest.approx(0.08)
    assert summary["tracing"]["busline-memory"]["traced"] == 0.0
