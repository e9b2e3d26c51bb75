"""The suite's outputs: ``latest.md`` (the tables), ``latest.png`` (the chart) and, for the
record but out of git, ``latest.json`` and a timestamped copy under ``raw/``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from benchmarks.spec import WORKLOADS
from benchmarks.systems import SYSTEMS
from benchmarks.tables import SECTIONS, oneline, render_section


def render_markdown(doc: dict[str, Any]) -> str:
    """The human-readable report: where it ran, the goals, one table per workload, failures."""
    settings = doc["meta"]["settings"]
    lines = _preamble(doc["meta"])
    lines += _goals(doc.get("goals", []))
    said: set[str] = set()
    for workload in WORKLOADS:
        if workload in doc["summary"]:
            lines += render_section(SECTIONS[workload], doc["summary"][workload], settings, said)
    lines += _failures(doc["runs"])
    ran = {run["system"] for run in doc["runs"]}
    described = [f"{k}: {v.description}" for k, v in SYSTEMS.items() if k in ran]
    lines += [f"Systems: {'; '.join(described)}.", "", f"Command: `{doc['meta']['command']}`"]
    return "\n".join(lines) + "\n"


def _preamble(meta: dict[str, Any]) -> list[str]:
    """The commit, machine, libraries and conditions every figure below depends on."""
    git, machine, settings = meta["git"], meta["machine"], meta["settings"]
    dirty = " plus uncommitted changes" if git.get("dirty") else ""
    changed = meta.get("git_changed_during_run")
    return [
        "# busline benchmarks",
        "",
        f"Commit `{git['short']}`{dirty} ({git.get('subject', '')}), run {meta['finished_at']}."
        + (" **The commit or working tree changed during the run.**" if changed else ""),
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


def _goals(goals: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, each pass, miss (by how much) or not measured."""
    if not goals:
        return []
    lines = ["## Goals (issues 3, 5, 6 and 16)", "", "| goal | target | measured | result |"]
    lines.append("|---|---|---|---|")
    for goal in goals:
        if goal["passed"] is None:
            verdict = "not measured"
        elif goal["passed"]:
            verdict = "✅ pass"
        else:
            verdict = f"❌ miss by {abs(goal['margin_pct']):.0f}%"
        lines.append(f"| {goal['goal']} | {goal['target']} | {goal['measured']} | {verdict} |")
    return [*lines, ""]


def _failures(runs: list[dict[str, Any]]) -> list[str]:
    """Failed runs, and runs that succeeded only on a retry (with the first attempt's error)."""
    lines: list[str] = []
    for heading, errors in (
        ("## Failed runs", [(run, run.get("error")) for run in runs if not run.get("ok")]),
        (
            "Runs that succeeded on a retry (first attempt's error):",
            [
                (run, run["retried_after"])
                for run in runs
                if run.get("ok") and run.get("retried_after")
            ],
        ),
    ):
        if errors:
            lines += [heading, ""]
            lines += [
                f"- {run['workload']} / {run['system']} (repeat {run['repeat'] + 1}): "
                f"{oneline(error)}"
                for run, error in errors
            ]
            lines.append("")
    return lines


def write_reports(doc: dict[str, Any], out_dir: Path, *, chart: bool = True) -> list[Path]:
    """Write ``latest.md``, ``latest.json``, a timestamped raw copy and ``latest.png``.

    Only ``latest.md`` and ``latest.png`` of the default directory are in git; the JSON files
    hold every run's figures for whoever wants to dig, and stay local (``.gitignore``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    raw_dir = out_dir / "raw"
    raw_dir.mkdir(exist_ok=True)
    # Strict JSON: NaN (a metric a failed system has not got) becomes null.
    text = json.dumps(_without_nan(doc), indent=2, allow_nan=False) + "\n"
    stamp = doc["meta"]["finished_at"].replace(":", "").replace("-", "").replace(" ", "T")
    written = [out_dir / "latest.md", out_dir / "latest.json", raw_dir / f"{stamp}.json"]
    written[0].write_text(render_markdown(doc))
    written[1].write_text(text)
    written[2].write_text(text)
    if chart:
        from benchmarks.chart import render_chart

        written.append(out_dir / "latest.png")
        render_chart(doc, written[-1])
    return written


def _without_nan(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(item) for item in value]
    return value
