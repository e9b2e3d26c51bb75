"""Smoke run of the benchmark suite (benchmarks/) with tiny sizes, in a few seconds.

Every workload runs once on every system that takes part in it, in-process and small, and must
succeed: a system that errors, loses a message, delivers one twice or leaves one unacked on the
broker fails its case (the outbox workloads also check the database and the queues they fill).
The report is rendered with every table and the chart, and the command line runs one worker
subprocess end to end. Nothing here judges speed: the goals are reported by the suite, not
asserted. RabbitMQ: the test broker's default vhost (each run names its queues after its own id
and deletes them); PostgreSQL: ``tests.servers.postgres_url()`` (each run makes its own
schema). Without them these cases skip locally and fail in CI, like the rest of the suite.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from benchmarks.cli import main, preflight
from benchmarks.harness import TIMES, Slot, schedule
from benchmarks.options import RESULTS, ROOT, build_parser, parse, settings
from benchmarks.report import write_reports
from benchmarks.spec import WORKLOADS, RunSpec
from benchmarks.summary import SUMMARY_METRICS, evaluate_goals, summarise
from benchmarks.systems import SYSTEMS, WORKLOAD_SYSTEMS
from benchmarks.tables import SECTIONS
from benchmarks.worker import execute
from benchmarks.workloads import PRIMARY_METRIC

#: Per workload: messages measured. Enough to exercise every path, small enough to be quick.
TINY = {
    "commands": 20,
    "events": 10,
    "latency": 20,
    "memory": 100,
    "outbox-relay": 10,
    "outbox-handler": 10,
    "saga": 6,  # instances, each a start and two updates
    "tracing": 100,
    "tracing-rabbit": 20,
    "rss": 30,
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


@pytest.fixture(scope="module")
def bench_amqp_url() -> str:
    """The test broker as it is, no vhost of its own: a vhost costs two ``rabbitmqctl`` calls
    (seconds), and a run needs no more isolation than its queue names give it (each is named
    after the run's own id, as with ``BUSLINE_BENCH_AMQP_URL``) and deletes what it declared."""
    from tests import servers

    return servers.rabbitmq_url()


def _postgres_url() -> str:
    """The test PostgreSQL (skips locally, fails in CI, when it is not reachable)."""
    from tests import servers

    return servers.postgres_url()


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
    spec = RunSpec(
        workload,
        system,
        n=TINY[workload],
        warmup=5,
        window=8,
        prefetch=8,
        rate=4000.0,  # 20 latency messages in 5 ms: the pacing path runs, the test stays short
        rss_samples=3,
        amqp_url=request.getfixturevalue("bench_amqp_url") if info.broker else "amqp://unused/",
        pg_url=_postgres_url() if info.postgres else "postgresql://unused/",
        outbox_tx_size=4,  # several transactions, the last one short
        saga_updates=2,
        timeout=30.0,
    )
    result = await execute(spec)

    assert result["ok"]
    metrics = result["metrics"]
    assert math.isfinite(metrics[PRIMARY_METRIC[workload][0]])
    assert metrics["duplicates"] == 0
    assert metrics["unexpected"] == 0
    assert result["peak_rss_mb"] > 0
    if workload == "outbox-relay":
        assert metrics["relay_rate"] > 0 and metrics["direct_rate"] > 0
    if workload == "saga":  # the workload itself checked every instance and every sent command
        assert metrics["messages"] == TINY["saga"] * 3 and metrics["update_rate"] > 0
    if workload.startswith("tracing"):
        # Tracing is installed exactly when an SDK is given, and then every message leaves a
        # send and a process span (none dropped at this size).
        with_sdk = dict(info.options).get("telemetry", "auto").startswith("sdk")
        assert metrics["traced"] is with_sdk
        if with_sdk:
            assert metrics["spans_per_msg"] == pytest.approx(2.0)


def bench_run(workload: str, system: str, **metrics: Any) -> dict[str, Any]:
    """One successful run's record, as the harness writes it."""
    return {
        "workload": workload,
        "system": system,
        "repeat": 0,
        "ok": True,
        "peak_rss_mb": 30.0,
        "metrics": metrics,
    }


def _doc(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A report document as the command line assembles it, around ``runs``."""
    summary = summarise(runs)
    meta = {
        "finished_at": "2026-01-01 00:00:00 UTC",
        "load_before": [0.1, 0.1, 0.1],
        "load_after": [0.2, 0.2, 0.2],
        "git": {"commit": "0" * 40, "short": "0" * 10, "dirty": False, "subject": "test"},
        "machine": {"cpu": "test", "cpus": 2, "memory_gib": 1.0, "os": "test", "python": "3"},
        "versions": {"busline": "0"},
        "broker": "RabbitMQ test",
        "settings": settings(parse([])),
        "command": "python -m benchmarks",
    }
    goals = [goal.as_dict() for goal in evaluate_goals(summary)]
    return {"meta": meta, "summary": summary, "goals": goals, "runs": runs}


def test_the_report_has_every_table_and_the_chart(tmp_path: Path) -> None:
    _require("matplotlib")
    runs = [
        bench_run(w, s, samples=[[0, 30.0], [10, 30.5]], **dict.fromkeys(SUMMARY_METRICS[w], 1.0))
        for w, systems in WORKLOAD_SYSTEMS.items()
        for s in systems
    ]
    runs.append({**runs[0], "ok": False, "error": "boom"})

    written = write_reports(_doc(runs), tmp_path)

    markdown = (tmp_path / "latest.md").read_text()
    recorded = settings(parse([]))
    for workload in WORKLOADS:
        assert f"## {SECTIONS[workload].title(recorded)}" in markdown
    assert "## Goals" in markdown
    assert "## Failed runs" in markdown
    assert json.loads((tmp_path / "latest.json").read_text())["runs"][-1]["error"] == "boom"
    assert len(list((tmp_path / "raw").glob("*.json"))) == 1
    png = tmp_path / "latest.png"
    assert png in written
    assert png.read_bytes().startswith(b"\x89PNG")
    assert png.stat().st_size < 100_000  # the chart is committed: it must stay small


def test_the_command_line_runs_a_worker_and_writes_the_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = ["--workloads", "memory", "--systems", "busline-memory,asyncio-queue"]
    tiny += ["--repeats", "1", "--memory-n", "100", "--warmup", "5", "--no-chart"]
    tiny += ["--out", str(tmp_path)]

    assert main(tiny) == 0

    doc = json.loads((tmp_path / "latest.json").read_text())
    runs = {run["system"]: run for run in doc["runs"]}
    assert sorted(runs) == ["asyncio-queue", "busline-memory"]
    assert all(run["ok"] and run["metrics"]["messages"] == 100 for run in runs.values())
    assert doc["meta"]["git"]["commit"]
    report = (tmp_path / "latest.md").read_text()
    assert "## In-process: memory transport" in report
    assert f"{TIMES} asyncio-queue" in report  # the ratio to the bare queue
    assert "memory transport vs a bare asyncio.Queue (issue 16)" in report
    assert "[  2/2]" in capsys.readouterr().err  # progress is shown


def test_raw_and_quick_results_stay_out_of_git() -> None:
    assert parse(["--quick"]).out == RESULTS / "quick"
    assert parse([]).out == RESULTS
    paths = ["latest.md", "latest.png", "latest.json", "raw/x.json", "quick/latest.md"]
    ignored = subprocess.run(
        ["git", "check-ignore", *(str(RESULTS.relative_to(ROOT) / p) for p in paths)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert sorted(Path(p).relative_to("benchmarks/results").as_posix() for p in ignored) == [
        "latest.json",
        "quick/latest.md",
        "raw/x.json",
    ]


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_preflight_finds_both_servers(bench_amqp_url: str) -> None:
    _require("aiormq", "asyncpg", "matplotlib")
    args = parse(["--amqp-url", bench_amqp_url, "--pg-url", _postgres_url()])
    slots = [Slot(0, "outbox-relay", "busline-postgresql")]

    found = preflight(args, slots)

    assert found is not None
    assert str(found["broker"]).startswith("RabbitMQ")
    assert str(found["database"]).startswith("PostgreSQL")


def test_preflight_refuses_an_unreachable_broker(capsys: pytest.CaptureFixture[str]) -> None:
    _require("aiormq", "matplotlib")
    args = parse(["--amqp-url", "amqp://guest:secret@127.0.0.1:1/"])

    assert preflight(args, [Slot(0, "commands", "busline")]) is None
    err = capsys.readouterr().err
    assert "RabbitMQ is not reachable" in err and "secret" not in err


def test_workload_groups_expand_in_suite_order() -> None:
    args = build_parser().parse_args(["--workloads", "tracing,outbox"])

    assert args.workloads == ["outbox-relay", "outbox-handler", "tracing"]


def test_schedule_alternates_and_rotates() -> None:
    slots = schedule(["commands"], {"commands": ["a", "b", "c"]}, repeats=3)

    orders = [[s.system for s in slots if s.repeat == r] for r in range(3)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]


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


def test_issue_16_goals_are_ratios_to_no_store_and_to_a_bare_queue() -> None:
    runs = [
        bench_run("outbox-handler", "busline", rate=1000.0),
        bench_run("outbox-handler", "busline-sqlite", rate=600.0),
        bench_run("outbox-handler", "busline-postgresql", rate=400.0),
        bench_run("memory", "asyncio-queue", rate=400_000.0),
        bench_run("memory", "busline-memory", rate=100_000.0),
    ]
    goals = {goal.goal: goal for goal in evaluate_goals(summarise(runs))}

    assert goals["handler with the outbox vs no store, SQLite (issue 16)"].passed is True
    assert goals["handler with the outbox vs no store, PostgreSQL (issue 16)"].passed is False
    memory = goals["memory transport vs a bare asyncio.Queue (issue 16)"]
    assert memory.measured == f"0.25{TIMES}" and memory.passed is False


def test_saga_rows_are_against_the_handler_on_the_same_store() -> None:
    rates = {"busline-sqlite": 500.0, "busline-sqlite-saga": 250.0, "busline-postgresql": 1e3}
    rates["busline-postgresql-saga"] = 800.0
    rows = summarise([bench_run("saga", s, rate=r) for s, r in rates.items()])["saga"]

    assert [rows[s]["vs_baseline"] for s in rates] == pytest.approx([1.0, 0.5, 1.0, 0.8])


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


@pytest.mark.postgres
async def test_roundtrip_measures_postgresql_and_sqlite() -> None:
    """``python -m benchmarks.roundtrip``, tiny: every figure of the TCP and SQLite rows is there
    and positive (server CPU may round to 0 ticks in 50 trips), and nothing judges speed."""
    from benchmarks import roundtrip

    rows = await roundtrip.run(50, _postgres_url())

    assert set(rows) == {
        roundtrip.PG_TCP,
        roundtrip.PG_UNIX,
        roundtrip.SQLITE_THREAD,
        roundtrip.SQLITE_INLINE,
    }
    for path in (roundtrip.PG_TCP, roundtrip.SQLITE_THREAD, roundtrip.SQLITE_INLINE):
        row = rows[path]
        for figure in (row.client_cpu_us, row.wall_us):
            assert figure is not None and math.isfinite(figure) and figure > 0, row
    server = rows[roundtrip.PG_TCP].server_cpu_us
    # Ticks of 10 ms: 50 trips of the backend's CPU often round to 0; None if not on this host.
    assert server is None or (math.isfinite(server) and server >= 0)
    assert roundtrip.conclusion(rows).startswith("a PostgreSQL round trip costs")
    assert all(path in roundtrip.summary_table(rows) for path in rows)
