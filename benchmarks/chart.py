"""``latest.png``: one panel per workload, medians as bars and each repeat as a dot."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import TIMES
from benchmarks.spec import WORKLOADS
from benchmarks.systems import BASELINE, SYSTEMS, baseline_of

COLOURS = {
    "aio-pika": "#7f7f7f",
    "faststream": "#1f77b4",
    "busline": "#d62728",
    "busline-quorum": "#ff9896",
    "busline-memory": "#2ca02c",
    "busline-sqlite": "#9467bd",
    "busline-postgresql": "#8c564b",
    "busline-postgresql-lean": "#c49c94",
    "busline-sqlite-saga": "#c5b0d5",
    "busline-postgresql-saga": "#e7969c",
    "busline-untraced": "#ff7f0e",
    "busline-otel": "#e377c2",
    "busline-memory-untraced": "#98df8a",
    "busline-memory-otel": "#17becf",
    "busline-memory-otel-metrics": "#bcbd22",
}


#: One panel per workload, in the suite's order, then the CPU comparison.
PANELS = (*WORKLOADS, "cpu")


def _clean(value: Any) -> float:
    return math.nan if value is None else float(value)


def _bars(ax: Any, rows: dict[str, dict[str, Any]], key: str, title: str, unit: str) -> None:
    """Median bars with the repeats as dots; memory rows are left out of broker panels (two
    orders of magnitude taller, they would flatten every other bar)."""
    names = [name for name in rows if name != "busline-memory" or len(rows) == 1]
    medians = [_clean(rows[name][key]) for name in names]
    positions = range(len(names))
    ax.bar(
        positions,
        [0 if math.isnan(v) else v for v in medians],
        color=[COLOURS.get(name, "#9467bd") for name in names],
    )
    for pos, name in zip(positions, names, strict=True):
        values = rows[name].get("values", [])
        ax.plot([pos] * len(values), values, "k.", markersize=4)
        if not math.isnan(medians[pos]):
            ax.annotate(
                f"{medians[pos]:,.0f}", (pos, medians[pos]), ha="center", va="bottom", fontsize=8
            )
    ax.set_xticks(list(positions), names, rotation=20, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(unit)


def _goal_line(ax: Any, rows: dict[str, dict[str, Any]], factor: float, label: str) -> None:
    base = _clean(rows.get(BASELINE, {}).get("rate"))
    if not math.isnan(base):
        ax.axhline(base * factor, color="k", linestyle="--", linewidth=0.8)
        ax.annotate(label, (0, base * factor), fontsize=7, va="bottom")


#: Inches per panel, and dots per inch: small enough that the committed chart stays well under
#: 100 KB, large enough that the 7-8 pt labels stay legible.
PANEL_SIZE = (4.6, 3.6)
DPI = 72


def render_chart(doc: dict[str, Any], path: Path) -> None:
    """Draw the summary of ``doc`` to ``path`` (PNG): one panel per workload, then CPU."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server; must precede pyplot
    import matplotlib.pyplot as plt

    summary = doc["summary"]
    settings = doc["meta"]["settings"]
    panels = [name for name in PANELS if name in summary]
    if "commands" in summary or "events" in summary:
        panels.append("cpu")
    columns = min(3, max(1, len(panels)))
    rows_count = math.ceil(len(panels) / columns) or 1
    width, height = PANEL_SIZE
    fig, axes = plt.subplots(
        rows_count, columns, figsize=(width * columns, height * rows_count), squeeze=False
    )
    flat = [ax for row in axes for ax in row]
    for ax, panel in zip(flat, panels, strict=False):
        if panel == "cpu":
            _cpu(ax, summary)
        else:
            _PANELS[panel](ax, panel, summary[panel], settings)
    for ax in flat[len(panels) :]:
        ax.axis("off")
    git = doc["meta"]["git"]
    dirty = "+" if git.get("dirty") else ""
    fig.suptitle(
        f"busline benchmarks · {git['short']}{dirty} · {doc['meta']['finished_at']} · "
        f"median of {settings['repeats']} · {doc['meta']['machine']['cpus']} CPUs",
        fontsize=11,
    )
    # Fixed margins in inches rather than tight_layout(), which measures every label and
    # took longer than all the drawing: room for the title on top, for rotated system names
    # under each row, and for the y labels on the left.
    total_width, total_height = width * columns, height * rows_count
    fig.subplots_adjust(
        left=0.75 / total_width,
        right=1 - 0.15 / total_width,
        bottom=0.8 / total_height,
        top=1 - 0.75 / total_height,
        wspace=0.38,
        hspace=0.6,
    )
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    _shrink(path)


def _shrink(path: Path) -> None:
    """Re-save the PNG with a palette of 256 colours: a chart has a few dozen, and the file
    (committed with every result) gets several times smaller, looking the same."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256)
    small.save(path, optimize=True)


Panel = Callable[[Any, str, dict[str, dict[str, Any]], dict[str, Any]], None]


def _commands(ax: Any, _: str, rows: dict[str, dict[str, Any]], s: dict[str, Any]) -> None:
    _bars(ax, rows, "rate", f"Commands end to end ({s['commands_n']:,})", "msg/s")
    _goal_line(ax, rows, 1.3, f"goal: 1.3{TIMES} aio-pika")


def _events(ax: Any, _: str, rows: dict[str, dict[str, Any]], s: dict[str, Any]) -> None:
    title = f"Events fan-out ({s['events_n']:,} {TIMES} {s['subscribers']})"
    _bars(ax, rows, "rate", title, "events/s")
    _goal_line(ax, rows, 1.3, f"goal: 1.3{TIMES} aio-pika")


def _memory(ax: Any, _: str, rows: dict[str, dict[str, Any]], s: dict[str, Any]) -> None:
    _bars(ax, rows, "rate", "Memory transport, full stack", "msg/s")
    ax.axhline(100_000, color="k", linestyle="--", linewidth=0.8)


def _handler(ax: Any, workload: str, rows: dict[str, dict[str, Any]], s: dict[str, Any]) -> None:
    title = f"Handler with outbox ({s.get('outbox_handler_n', 0):,}), vs no store"
    if workload == "saga":
        title = f"Saga steps ({s.get('saga_n', 0):,} instances) vs handler, same store"
    _bars(ax, rows, "rate", title, "msg/s (saga: steps/s)" if workload == "saga" else "msg/s")


def _relay(ax: Any, _: str, rows: dict[str, dict[str, Any]], settings: dict[str, Any]) -> None:
    """Direct publishing and the relay side by side per store, the ratio over the relay's bar
    and the 0.8x goal (issue 5) as a dashed mark over it."""
    names = list(rows)
    width = 0.38
    for i, name in enumerate(names):
        row = rows[name]
        direct, relay = _clean(row.get("direct_rate")), _clean(row.get("relay_rate"))
        ax.bar(i - width / 2, 0 if math.isnan(direct) else direct, width, color="#7f7f7f")
        ax.bar(i + width / 2, 0 if math.isnan(relay) else relay, width, color=COLOURS.get(name))
        if not math.isnan(direct) and _option(name, "store") == "postgresql":
            # The target is PostgreSQL's (issue 5); SQLite has none.
            ax.hlines(0.8 * direct, i, i + width, colors="k", linestyles="--", linewidth=0.8)
        ratio = _clean(row.get("relay_vs_direct"))
        if not math.isnan(ratio) and not math.isnan(relay):
            ax.annotate(f"{ratio:.2f}{TIMES}", (i + width / 2, relay), ha="center", va="bottom")
    ax.set_xticks(range(len(names)), [f"{n}\ndirect | relay" for n in names], fontsize=8)
    ax.set_ylabel("msg/s (publish only)")
    ax.set_title(
        f"Outbox relay vs direct publish ({settings.get('outbox_n', 0):,}; goal PG 0.8{TIMES})",
        fontsize=10,
    )


def _tracing(ax: Any, workload: str, rows: dict[str, dict[str, Any]], _: dict[str, Any]) -> None:
    """Each row's throughput as a share of tracing=False's, with the rate written on it."""
    names = list(rows)
    ratios = [_clean(rows[name].get("vs_baseline")) for name in names]
    ax.bar(
        range(len(names)),
        [0 if math.isnan(v) else v for v in ratios],
        color=[COLOURS.get(name, "#9467bd") for name in names],
    )
    for pos, name in enumerate(names):
        rate = _clean(rows[name].get("rate"))
        if not math.isnan(ratios[pos]):
            ax.annotate(
                f"{ratios[pos]:.2f}{TIMES}\n{rate:,.0f}/s",
                (pos, ratios[pos]),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    if workload == "tracing":
        ax.axhline(0.95, color="k", linestyle="--", linewidth=0.8)  # no SDK: at most 5% off
    ax.set_ylim(0, 1.25)
    ax.set_xticks(range(len(names)), [_short(name) for name in names], rotation=20, fontsize=8)
    ax.set_ylabel(f"throughput \u00f7 {baseline_of(workload)}")
    if workload == "tracing":
        title = f"Tracing overhead, memory transport (goal no SDK ≥ 0.95{TIMES})"
    else:
        title = "Tracing overhead, RabbitMQ"
    ax.set_title(title, fontsize=10)


def _option(system: str, key: str) -> object:
    info = SYSTEMS.get(system)
    return dict(info.options).get(key) if info is not None else None


def _short(name: str) -> str:
    """``memory-otel`` for ``busline-memory-otel``, ``rabbit-auto`` for ``busline``."""
    if name.startswith("busline-memory"):
        return "memory" + (name.removeprefix("busline-memory") or "-auto")
    return "rabbit" + (name.removeprefix("busline") or "-auto")


def _latency(ax: Any, _: str, rows: dict[str, dict[str, Any]], settings: dict[str, Any]) -> None:
    names = list(rows)
    width = 0.27
    for offset, key in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        values = [_clean(rows[name][key]) for name in names]
        ax.bar(
            [i + (offset - 1) * width for i in range(len(names))],
            [0 if math.isnan(v) else v for v in values],
            width,
            label=key.split("_")[0],
        )
    ax.axhline(5.0, color="k", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    ax.set_ylabel("ms")
    ax.set_title(f"Latency at {settings['rate']:,.0f} msg/s (goal p99 ≤ 5 ms)", fontsize=10)
    ax.legend(fontsize=8)


def _rss(ax: Any, _: str, rows: dict[str, dict[str, Any]], __: dict[str, Any]) -> None:
    for name, row in rows.items():
        samples = row.get("samples") or []
        if samples:
            ax.plot(
                [s[0] for s in samples],
                [s[1] for s in samples],
                marker=".",
                label=f"{name} ({_clean(row['growth_mb']):+.1f} MB)",
                color=COLOURS.get(name),
            )
    ax.set_xlabel("messages after warm-up")
    ax.set_ylabel("RSS MB")
    ax.set_title("RSS over the long run (goal: growth ≤ 20 MB)", fontsize=10)
    ax.legend(fontsize=8)


def _cpu(ax: Any, summary: dict[str, dict[str, dict[str, Any]]]) -> None:
    """CPU per message of the client process: steadier than wall time on a busy machine."""
    workloads = [name for name in ("commands", "events") if name in summary]
    names = [
        name
        for name in dict.fromkeys(n for w in workloads for n in summary[w])
        if name != "busline-memory"
    ]
    width = 0.8 / max(1, len(workloads))
    for offset, workload in enumerate(workloads):
        values = [_clean(summary[workload].get(name, {}).get("cpu_us_per_msg")) for name in names]
        ax.bar(
            [i + (offset - (len(workloads) - 1) / 2) * width for i in range(len(names))],
            [0 if math.isnan(v) else v for v in values],
            width,
            label=workload,
        )
    ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    ax.set_ylabel("µs CPU per message (client process)")
    ax.set_title("Client CPU per message (lower is better)", fontsize=10)
    ax.legend(fontsize=8)


#: How each workload's panel is drawn: ``draw(ax, workload, rows, settings)``.
_PANELS: dict[str, Panel] = {
    "commands": _commands,
    "events": _events,
    "latency": _latency,
    "memory": _memory,
    "outbox-relay": _relay,
    "outbox-handler": _handler,
    "saga": _handler,
    "tracing": _tracing,
    "tracing-rabbit": _tracing,
    "rss": _rss,
}
