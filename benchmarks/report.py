"""The suite's outputs: ``latest.json`` (everything), ``latest.md`` (tables) and ``latest.png``."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import TIMES
from benchmarks.systems import BASELINE, SYSTEMS, baseline_of

Row = dict[str, Any]


def _num(value: float, fmt: str, suffix: str = "") -> str:
    return "—" if value is None or math.isnan(value) else f"{value:{fmt}}{suffix}"


def _values(row: Row, fmt: str) -> str:
    return ", ".join(f"{value:{fmt}}" for value in row["values"]) or "—"


def _table(
    headers: list[str],
    rows: dict[str, Row],
    cells: Callable[[Row], list[str]],
) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for system, row in rows.items():
        name = f"**{system}**" if system.startswith("busline") else system
        if row["ok"] == 0:
            padding = " |" * (len(headers) - 2)
            lines.append(f"| {name} | failed: {_oneline(row['error'])} |{padding}")
            continue
        # The row's own name goes along, for columns that depend on the system's options.
        lines.append("| " + " | ".join([name, *cells({"system": system, **row})]) + " |")
    return lines


def _oneline(text: str | None) -> str:
    return (text or "failed").splitlines()[0].replace("|", "/")[:160]


def render_markdown(doc: dict[str, Any]) -> str:
    """The human-readable report."""
    meta = doc["meta"]
    settings = meta["settings"]
    summary = doc["summary"]
    git = meta["git"]
    machine = meta["machine"]
    dirty = " plus uncommitted changes" if git.get("dirty") else ""
    lines = [
        "# busline benchmarks",
        "",
        f"Commit `{git['short']}`{dirty} ({git.get('subject', '')}), run {meta['finished_at']}."
        + (
            " **The commit or working tree changed during the run.**"
            if meta.get("git_changed_during_run")
            else ""
        ),
        f"Machine: {machine['cpu']}, {machine['cpus']} CPUs, {machine['memory_gib']} GiB, "
        f"{machine['os']}, {machine['python']}, event loop: {settings['loop']}. "
        f"Broker: {meta.get('broker') or 'none (memory systems only)'} on the same host. "
        f"Load average (1 min) before/after: {meta['load_before'][0]:.2f} / "
        f"{meta['load_after'][0]:.2f}.",
        "Libraries: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
        "Every system: persistent messages, publisher confirms, ack after the handler, durable "
        "classic queues (`busline-quorum`: busline's default quorum queues), a ~100-byte JSON "
        f"payload, prefetch {settings['prefetch']}, {settings['window']} publishes in flight. "
        f"Median of {settings['repeats']} repeats; within a repeat the systems run one after "
        "another, in an order that rotates between repeats, each run in its own process. "
        "`busline-memory` is busline on its in-process transport (no broker): a reference, "
        "not a like-for-like row.",
        "",
    ]
    goals = doc.get("goals", [])
    if goals:
        lines += ["## Goals (issues 3, 5 and 6)", "", "| goal | target | measured | result |"]
        lines.append("|---|---|---|---|")
        for goal in goals:
            if goal["passed"] is None:
                verdict = "not measured"
            elif goal["passed"]:
                verdict = "✅ pass"
            else:
                verdict = f"❌ miss by {abs(goal['margin_pct']):.0f}%"
            lines.append(f"| {goal['goal']} | {goal['target']} | {goal['measured']} | {verdict} |")
        lines.append("")

    def rss(row: Row) -> str:
        return _num(row["peak_rss_mb"], ".1f")

    if "commands" in summary:
        lines += [
            f"## Commands end to end: {settings['commands_n']:,} commands, first send to last "
            "handler",
            "",
            *_table(
                [
                    "system",
                    "msg/s",
                    f"{TIMES} {BASELINE}",
                    "repeats (msg/s)",
                    "CPU µs/msg",
                    "peak RSS MB",
                ],
                summary["commands"],
                lambda r: [
                    _num(r["rate"], ",.0f"),
                    _num(r["vs_baseline"], ".2f", TIMES),
                    _values(r, ",.0f"),
                    _num(r["cpu_us_per_msg"], ",.0f"),
                    rss(r),
                ],
            ),
            "",
        ]
    if "events" in summary:
        lines += [
            f"## Events fan-out: {settings['events_n']:,} events {TIMES} {settings['subscribers']} "
            "subscribers, until every subscriber has every event",
            "",
            *_table(
                [
                    "system",
                    "events/s",
                    "deliveries/s",
                    f"{TIMES} {BASELINE}",
                    "repeats (events/s)",
                    "CPU µs/event",
                    "peak RSS MB",
                ],
                summary["events"],
                lambda r: [
                    _num(r["rate"], ",.0f"),
                    _num(r["deliveries_rate"], ",.0f"),
                    _num(r["vs_baseline"], ".2f", TIMES),
                    _values(r, ",.0f"),
                    _num(r["cpu_us_per_msg"], ",.0f"),
                    rss(r),
                ],
            ),
            "",
        ]
    if "latency" in summary:
        lines += [
            f"## Latency: send call to handler, {settings['rate']:,.0f} msg/s offered for "
            f"{settings['duration']:g} s",
            "",
            "Lower is better; `p99 ÷ aio-pika` below 1 means busline's tail is shorter. "
            "`late p99` is how late the sender started its sends against the timetable.",
            "",
            *_table(
                [
                    "system",
                    "p50 ms",
                    "p95 ms",
                    "p99 ms",
                    "max ms",
                    f"p99 ÷ {BASELINE}",
                    "achieved msg/s",
                    "late p99 ms",
                    "peak RSS MB",
                ],
                summary["latency"],
                lambda r: [
                    _num(r["p50_ms"], ".2f"),
                    _num(r["p95_ms"], ".2f"),
                    _num(r["p99_ms"], ".2f"),
                    _num(r["max_ms"], ".2f"),
                    _num(r["vs_baseline"], ".2f"),
                    _num(r["achieved_rate"], ",.0f"),
                    _num(r["send_lateness_p99_ms"], ".2f"),
                    rss(r),
                ],
            ),
            "",
        ]
    if "memory" in summary:
        lines += [
            f"## In-process: memory transport, full stack, {settings['memory_n']:,} commands",
            "",
            *_table(
                ["system", "msg/s", "repeats (msg/s)", "CPU µs/msg", "peak RSS MB"],
                summary["memory"],
                lambda r: [
                    _num(r["rate"], ",.0f"),
                    _values(r, ",.0f"),
                    _num(r["cpu_us_per_msg"], ".1f"),
                    rss(r),
                ],
            ),
            "",
        ]
    lines += _outbox_sections(summary, settings)
    lines += _tracing_sections(summary, settings)
    if "rss" in summary:
        lines += [
            f"## RSS over a long run: {settings['rss_n']:,} commands after "
            f"{settings['rss_warmup']:,} warm-up",
            "",
            "`live Python blocks Δ` counts objects still allocated at the end "
            "(`sys.getallocatedblocks()` after a full collection): RSS growth with no growth "
            "there is memory the allocator keeps after a burst, not a leak.",
            "",
            *_table(
                [
                    "system",
                    "RSS start MB",
                    "RSS end MB",
                    "growth MB",
                    "live Python blocks Δ",
                    "msg/s",
                    "peak RSS MB",
                ],
                summary["rss"],
                lambda r: [
                    _num(r["rss_start_mb"], ".1f"),
                    _num(r["rss_end_mb"], ".1f"),
                    _num(r["growth_mb"], "+.1f"),
                    _num(r["live_blocks_growth"], "+,.0f"),
                    _num(r["rate"], ",.0f"),
                    rss(r),
                ],
            ),
            "",
        ]
    failures = [run for run in doc["runs"] if not run.get("ok")]
    if failures:
        lines += ["## Failed runs", ""]
        for run in failures:
            lines.append(
                f"- {run['workload']} / {run['system']} (repeat {run['repeat'] + 1}): "
                f"{_oneline(run.get('error'))}"
            )
        lines.append("")
    retried = [run for run in doc["runs"] if run.get("ok") and run.get("retried_after")]
    if retried:
        lines += ["Runs that succeeded on a retry (first attempt's error):", ""]
        for run in retried:
            lines.append(
                f"- {run['workload']} / {run['system']} (repeat {run['repeat'] + 1}): "
                f"{_oneline(run['retried_after'])}"
            )
        lines.append("")
    ran = {run["system"] for run in doc["runs"]}
    described = [f"{k}: {v.description}" for k, v in SYSTEMS.items() if k in ran]
    lines.append(f"Systems: {'; '.join(described)}.")
    lines.append("")
    lines.append(f"Command: `{meta['command']}`")
    return "\n".join(lines) + "\n"


def _option(system: str, key: str, default: str = "—") -> str:
    """A system's option (``store``, ``telemetry``) as registered, for a table column."""
    info = SYSTEMS.get(system)
    return str(dict(info.options).get(key, default)) if info is not None else default


def _outbox_sections(summary: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """The outbox relay and handler-with-outbox tables (issue 5)."""
    lines: list[str] = []
    if "outbox-relay" in summary:
        lines += [
            f"## Outbox relay vs direct publish: {settings.get('outbox_n', 0):,} messages, "
            f"RabbitMQ (classic queues)",
            "",
            "Each run writes a backlog the way a broker outage does: a second instance of the "
            "service, whose publishes are all refused, commits the messages with "
            f"`bus.transaction()` ({settings.get('outbox_tx_size', '?')} per transaction), and "
            "its relay is stopped. The measured bus's relay is then woken and timed until no "
            "row is pending in the database; on the same bus, the same number of `bus.send` "
            "calls (half just before the relay, half just after) with "
            f"{settings['window']} in flight is the base of the ratio (the relay's "
            f"`relay_window` is set to the same {settings['window']}). Publishing "
            "only, no consumer; each queue's depth is checked afterwards. The ratio is taken "
            "per run, then the median.",
            "",
            *_table(
                [
                    "system",
                    "store",
                    "relay msg/s",
                    "direct msg/s",
                    "relay ÷ direct",
                    "repeats (ratio)",
                    "relay CPU µs/msg",
                    "direct CPU µs/msg",
                    "backlog written msg/s",
                    "peak RSS MB",
                ],
                summary["outbox-relay"],
                lambda r: [
                    _option(r["system"], "store"),
                    _num(r["relay_rate"], ",.0f"),
                    _num(r["direct_rate"], ",.0f"),
                    _num(r["relay_vs_direct"], ".2f", TIMES),
                    _values(r, ".2f"),
                    _num(r["relay_cpu_us_per_msg"], ",.0f"),
                    _num(r["direct_cpu_us_per_msg"], ",.0f"),
                    _num(r["fill_rate"], ",.0f"),
                    _num(r["peak_rss_mb"], ".1f"),
                ],
            ),
            "",
        ]
    if "outbox-handler" in summary:
        base = baseline_of("outbox-handler")
        lines += [
            f"## Handler with the outbox: {settings.get('outbox_handler_n', 0):,} commands "
            "end to end, RabbitMQ (classic queues)",
            "",
            "The handler writes one business row through `ctx.db` and sends one command with "
            "`ctx.send`: with a store, the row, the inbox record and the outbox row commit in "
            "one transaction, then the command is published, then the incoming one is acked. "
            f"`{base}` runs the same handler without a store (it only sends). Each run has a "
            "fresh SQLite file or PostgreSQL schema; afterwards every handled message must have "
            "its business row and its sent command, and no outbox row may be pending.",
            "",
            *_table(
                [
                    "system",
                    "store",
                    "msg/s",
                    f"{TIMES} {base}",
                    "repeats (msg/s)",
                    "CPU µs/msg",
                    "peak RSS MB",
                ],
                summary["outbox-handler"],
                lambda r: [
                    _option(r["system"], "store", "none"),
                    _num(r["rate"], ",.0f"),
                    _num(r["vs_baseline"], ".2f", TIMES),
                    _values(r, ",.0f"),
                    _num(r["cpu_us_per_msg"], ",.0f"),
                    _num(r["peak_rss_mb"], ".1f"),
                ],
            ),
            "",
        ]
    return lines


def _tracing_sections(summary: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """The tracing overhead tables (issue 6), memory transport and RabbitMQ."""
    lines: list[str] = []
    titles = {
        "tracing": (
            f"memory transport, {settings.get('tracing_n', 0):,} commands (the SDK rows: a "
            "twentieth of them)"
        ),
        "tracing-rabbit": (
            f"RabbitMQ (classic queues), {settings.get('tracing_rabbit_n', 0):,} commands"
        ),
    }
    intro = [
        "The commands workload with `tracing=False`, with busline's default (`tracing=None`) "
        "and no SDK configured, and with an OpenTelemetry SDK `TracerProvider` whose "
        "`BatchSpanProcessor` (default settings) feeds an exporter that drops the spans "
        "(`otel-metrics`: plus an SDK `MeterProvider` with a periodic reader); providers are "
        "passed to the bus and shut down after each run. `installed`: whether busline "
        "installed its tracing middleware (it must not without an SDK). `spans/msg`: spans "
        "that reached the exporter per message (2 = send and process, none dropped).",
        "",
    ]
    for workload, title in titles.items():
        if workload not in summary:
            continue
        base = baseline_of(workload)
        lines += [
            f"## Tracing overhead: {title}",
            "",
            *intro,
            *_table(
                [
                    "system",
                    "telemetry",
                    "msg/s",
                    f"{TIMES} {base}",
                    "repeats (msg/s)",
                    "CPU µs/msg",
                    "spans/msg",
                    "installed",
                    "peak RSS MB",
                ],
                summary[workload],
                lambda r: [
                    _option(r["system"], "telemetry", "auto"),
                    _num(r["rate"], ",.0f"),
                    _num(r["vs_baseline"], ".2f", TIMES),
                    _values(r, ",.0f"),
                    _num(r["cpu_us_per_msg"], ",.1f"),
                    _num(r["spans_per_msg"], ".2f"),
                    _yes_no(r["traced"]),
                    _num(r["peak_rss_mb"], ".1f"),
                ],
            ),
            "",
        ]
        intro = []  # said once
    return lines


def _yes_no(value: float) -> str:
    """A boolean's median over repeats (1.0, 0.0), or "mixed"."""
    if value is None or math.isnan(value):
        return "—"
    return "yes" if value == 1 else "no" if value == 0 else "mixed"


def write_reports(doc: dict[str, Any], out_dir: Path, *, chart: bool = True) -> list[Path]:
    """Write ``latest.json``, ``latest.md``, ``latest.png`` and a timestamped raw copy."""
    out_dir.mkdir(parents=True, exist_ok=True)
    raw_dir = out_dir / "raw"
    raw_dir.mkdir(exist_ok=True)
    # Strict JSON: NaN (a metric a failed system has not got) becomes null.
    text = json.dumps(_without_nan(doc), indent=2, allow_nan=False)
    stamp = doc["meta"]["finished_at"].replace(":", "").replace("-", "").replace(" ", "T")
    written = [out_dir / "latest.json", out_dir / "latest.md", raw_dir / f"{stamp}.json"]
    written[0].write_text(text + "\n")
    written[1].write_text(render_markdown(doc))
    written[2].write_text(text + "\n")
    if chart:
        from benchmarks.chart import render_chart

        png = out_dir / "latest.png"
        render_chart(doc, png)
        written.append(png)
    return written


def _without_nan(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(item) for item in value]
    return value
