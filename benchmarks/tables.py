"""The report's tables, one :class:`Section` per workload: its title, its prose and its columns.

Declared as data, so that a table is its list of columns and :func:`render_section` is the one
piece of code that lays every table out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import TIMES
from benchmarks.intros import (
    HANDLER_INTRO,
    MEMORY_INTRO,
    RELAY_INTRO,
    SAGA_INTRO,
    TRACING_INTRO,
)
from benchmarks.systems import BASELINE, SYSTEMS, baseline_of

Row = dict[str, Any]
Settings = dict[str, Any]


@dataclass(frozen=True)
class Column:
    """One column: its header and how a summary row becomes its cell."""

    header: str
    cell: Callable[[Row], str]


@dataclass(frozen=True)
class Section:
    """One workload's table, with the heading and the prose above it."""

    title: Callable[[Settings], str]
    columns: Sequence[Column]
    #: Paragraphs between the heading and the table.
    intro: Callable[[Settings], Sequence[str]] = lambda settings: ()


def num(key: str, fmt: str, suffix: str = "") -> Callable[[Row], str]:
    """A cell showing ``row[key]`` as ``fmt``; a missing figure (``None``, NaN) shows as —."""

    def cell(row: Row) -> str:
        value = row.get(key)
        return "—" if value is None or math.isnan(value) else f"{value:{fmt}}{suffix}"

    return cell


def repeats(fmt: str) -> Callable[[Row], str]:
    """A cell listing the primary metric of every successful repeat."""
    return lambda row: ", ".join(f"{value:{fmt}}" for value in row["values"]) or "—"


def option(key: str, default: str = "—") -> Callable[[Row], str]:
    """A cell showing a system's registered option (``store``, ``telemetry``)."""

    def cell(row: Row) -> str:
        info = SYSTEMS.get(row["system"])
        return str(dict(info.options).get(key, default)) if info is not None else default

    return cell


def yes_no(key: str) -> Callable[[Row], str]:
    """A boolean's median over repeats (1.0, 0.0) as yes or no, or "mixed"."""

    def cell(row: Row) -> str:
        value = row.get(key)
        if value is None or math.isnan(value):
            return "—"
        return "yes" if value == 1 else "no" if value == 0 else "mixed"

    return cell


def oneline(text: str | None) -> str:
    """The first line of an error, safe inside a table cell."""
    return (text or "failed").splitlines()[0].replace("|", "/")[:160]


def render_section(
    section: Section, rows: dict[str, Row], settings: Settings, said: set[str]
) -> list[str]:
    """The heading, the prose and the table of one workload, as Markdown lines.

    ``said`` holds the paragraphs already written by earlier sections (the two tracing tables
    share theirs): each is written once.
    """
    lines = [f"## {section.title(settings)}", ""]
    for paragraph in section.intro(settings):
        if paragraph not in said:
            said.add(paragraph)
            lines += [paragraph, ""]
    headers = ["system", *(column.header for column in section.columns)]
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for system, row in rows.items():
        name = f"**{system}**" if system.startswith("busline") else system
        if row["ok"] == 0:
            padding = " |" * (len(headers) - 2)
            lines.append(f"| {name} | failed: {oneline(row['error'])} |{padding}")
            continue
        # The row's own name goes along, for columns that depend on the system's options.
        cells = [column.cell({"system": system, **row}) for column in section.columns]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return [*lines, ""]


PEAK_RSS = Column("peak RSS MB", num("peak_rss_mb", ".1f"))


def _vs(base: str) -> Column:
    return Column(f"{TIMES} {base}", num("vs_baseline", ".2f", TIMES))


def _rate_columns(base: str = BASELINE) -> list[Column]:
    """msg/s, its ratio to the workload's baseline row, the repeats and CPU per message."""
    return [
        Column("msg/s", num("rate", ",.0f")),
        _vs(base),
        Column("repeats (msg/s)", repeats(",.0f")),
        Column("CPU µs/msg", num("cpu_us_per_msg", ",.0f")),
    ]


def _saga_intro(settings: Settings) -> str:
    updates = settings.get("saga_updates")
    steps = "?" if updates is None else 1 + int(updates)
    return SAGA_INTRO.format(updates=updates if updates is not None else "?", steps=steps)


def _tracing_columns(workload: str) -> list[Column]:
    return [
        Column("telemetry", option("telemetry", "auto")),
        Column("msg/s", num("rate", ",.0f")),
        _vs(baseline_of(workload)),
        Column("repeats (msg/s)", repeats(",.0f")),
        Column("CPU µs/msg", num("cpu_us_per_msg", ",.1f")),
        Column("spans/msg", num("spans_per_msg", ".2f")),
        Column("installed", yes_no("traced")),
        PEAK_RSS,
    ]


#: Every workload's table, in the report's order (the suite's).
SECTIONS: dict[str, Section] = {
    "commands": Section(
        lambda s: f"Commands end to end: {s['commands_n']:,} commands, first send to last handler",
        [*_rate_columns(), PEAK_RSS],
    ),
    "events": Section(
        lambda s: (
            f"Events fan-out: {s['events_n']:,} events {TIMES} {s['subscribers']} subscribers, "
            "until every subscriber has every event"
        ),
        [
            Column("events/s", num("rate", ",.0f")),
            Column("deliveries/s", num("deliveries_rate", ",.0f")),
            _vs(BASELINE),
            Column("repeats (events/s)", repeats(",.0f")),
            Column("CPU µs/event", num("cpu_us_per_msg", ",.0f")),
            PEAK_RSS,
        ],
    ),
    "latency": Section(
        lambda s: (
            f"Latency: send call to handler, {s['rate']:,.0f} msg/s offered for {s['duration']:g} s"
        ),
        [
            *(Column(f"{p} ms", num(f"{p}_ms", ".2f")) for p in ("p50", "p95", "p99", "max")),
            Column(f"p99 ÷ {BASELINE}", num("vs_baseline", ".2f")),
            Column("achieved msg/s", num("achieved_rate", ",.0f")),
            Column("late p99 ms", num("send_lateness_p99_ms", ".2f")),
            PEAK_RSS,
        ],
        lambda s: [
            "Lower is better; `p99 ÷ aio-pika` below 1 means busline's tail is shorter. "
            "`late p99` is how late the sender started its sends against the timetable."
        ],
    ),
    "memory": Section(
        lambda s: f"In-process: memory transport, full stack, {s['memory_n']:,} commands",
        [
            Column("msg/s", num("rate", ",.0f")),
            _vs(baseline_of("memory")),
            Column("repeats (msg/s)", repeats(",.0f")),
            Column("CPU µs/msg", num("cpu_us_per_msg", ".1f")),
            PEAK_RSS,
        ],
        lambda s: [MEMORY_INTRO],
    ),
    "outbox-relay": Section(
        lambda s: (
            f"Outbox relay vs direct publish: {s.get('outbox_n', 0):,} messages, "
            "RabbitMQ (classic queues)"
        ),
        [
            Column("store", option("store")),
            Column("relay msg/s", num("relay_rate", ",.0f")),
            Column("direct msg/s", num("direct_rate", ",.0f")),
            Column("relay ÷ direct", num("relay_vs_direct", ".2f", TIMES)),
            Column("repeats (ratio)", repeats(".2f")),
            Column("relay CPU µs/msg", num("relay_cpu_us_per_msg", ",.0f")),
            Column("direct CPU µs/msg", num("direct_cpu_us_per_msg", ",.0f")),
            Column("backlog written msg/s", num("fill_rate", ",.0f")),
            PEAK_RSS,
        ],
        lambda s: [RELAY_INTRO.format(tx=s.get("outbox_tx_size", "?"), window=s["window"])],
    ),
    "outbox-handler": Section(
        lambda s: (
            f"Handler with the outbox: {s.get('outbox_handler_n', 0):,} commands end to end, "
            "RabbitMQ (classic queues)"
        ),
        [
            Column("store", option("store", "none")),
            *_rate_columns(baseline_of("outbox-handler")),
            PEAK_RSS,
        ],
        lambda s: [HANDLER_INTRO.format(base=baseline_of("outbox-handler"))],
    ),
    "saga": Section(
        lambda s: (
            f"Saga steps: {s.get('saga_n', 0):,} instances {TIMES} (1 start + "
            f"{s.get('saga_updates', '?')} updates), RabbitMQ (classic queues)"
        ),
        [
            Column("store", option("store")),
            Column("saga", lambda row: "yes" if option("saga", "")(row) == "True" else "no"),
            Column("steps/s", num("rate", ",.0f")),
            Column("÷ handler", num("vs_baseline", ".2f", TIMES)),
            Column("repeats (steps/s)", repeats(",.0f")),
            Column("CPU µs/step", num("cpu_us_per_msg", ",.0f")),
            Column("starts/s", num("start_rate", ",.0f")),
            Column("updates/s", num("update_rate", ",.0f")),
            Column("conflicts", num("conflicts", ",.0f")),
            PEAK_RSS,
        ],
        lambda s: [_saga_intro(s)],
    ),
    "tracing": Section(
        lambda s: (
            f"Tracing overhead: memory transport, {s.get('tracing_n', 0):,} commands (the SDK "
            "rows: a twentieth of them)"
        ),
        _tracing_columns("tracing"),
        lambda s: [TRACING_INTRO],
    ),
    "tracing-rabbit": Section(
        lambda s: (
            f"Tracing overhead: RabbitMQ (classic queues), {s.get('tracing_rabbit_n', 0):,} "
            "commands"
        ),
        _tracing_columns("tracing-rabbit"),
        lambda s: [TRACING_INTRO],
    ),
    "rss": Section(
        lambda s: f"RSS over a long run: {s['rss_n']:,} commands after {s['rss_warmup']:,} warm-up",
        [
            Column("RSS start MB", num("rss_start_mb", ".1f")),
            Column("RSS end MB", num("rss_end_mb", ".1f")),
            Column("growth MB", num("growth_mb", "+.1f")),
            Column("live Python blocks Δ", num("live_blocks_growth", "+,.0f")),
            Column("msg/s", num("rate", ",.0f")),
            PEAK_RSS,
        ],
        lambda s: [
            "`live Python blocks Δ` counts objects still allocated at the end "
            "(`sys.getallocatedblocks()` after a full collection): RSS growth with no growth "
            "there is memory the allocator keeps after a burst, not a leak."
        ],
    ),
}
