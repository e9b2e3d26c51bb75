"""``latest.png``: one panel per workload, medians as bars and each repeat as a dot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from benchmarks.harness import TIMES
from benchmarks.systems import BASELINE

COLOURS = {
    "aio-pika": "#7f7f7f",
    "faststream": "#1f77b4",
    "busline": "#d62728",
    "busline-quorum": "#ff9896",
    "busline-memory": "#2ca02c",
}


PANELS = ("commands", "events", "latency", "memory", "rss", "cpu")


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


def render_chart(doc: dict[str, Any], path: Path) -> None:
    """Draw the summary of ``doc`` to ``path`` (PNG)."""
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
    fig, axes = plt.subplots(
        rows_count, columns, figsize=(5.2 * columns, 4.2 * rows_count), squeeze=False
    )
    flat = [ax for row in axes for ax in row]
    for ax, panel in zip(flat, panels, strict=False):
        rows = summary.get(panel, {})
        if panel == "commands":
            _bars(ax, rows, "rate", f"Commands end to end ({settings['commands_n']:,})", "msg/s")
            _goal_line(ax, rows, 1.3, f"goal: 1.3{TIMES} aio-pika")
        elif panel == "events":
            _bars(
                ax,
                rows,
                "rate",
                f"Events fan-out ({settings['events_n']:,} {TIMES} {settings['subscribers']})",
                "events/s",
            )
            _goal_line(ax, rows, 1.3, f"goal: 1.3{TIMES} aio-pika")
        elif panel == "memory":
            _bars(ax, rows, "rate", "Memory transport, full stack", "msg/s")
            ax.axhline(100_000, color="k", linestyle="--", linewidth=0.8)
        elif panel == "latency":
            _latency(ax, rows, settings)
        elif panel == "rss":
            _rss(ax, rows)
        else:
            _cpu(ax, summary)
    for ax in flat[len(panels) :]:
        ax.axis("off")
    git = doc["meta"]["git"]
    dirty = "+" if git.get("dirty") else ""
    fig.suptitle(
        f"busline benchmarks · {git['short']}{dirty} · {doc['meta']['finished_at']} · "
        f"median of {settings['repeats']} · {doc['meta']['machine']['cpus']} CPUs",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _latency(ax: Any, rows: dict[str, dict[str, Any]], settings: dict[str, Any]) -> None:
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


def _rss(ax: Any, rows: dict[str, dict[str, Any]]) -> None:
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
