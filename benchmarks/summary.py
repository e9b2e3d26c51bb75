"""From raw runs to medians, ratios to plain aio-pika, and the issue's goals (pass or miss)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import TIMES, median
from benchmarks.systems import BASELINE, SYSTEMS, WORKLOAD_SYSTEMS, baseline_of
from benchmarks.workloads import PRIMARY_METRIC

#: ``{workload: {system: row}}``: what :func:`summarise` makes of the runs.
Summary = dict[str, dict[str, dict[str, Any]]]

#: Metrics whose median the summary keeps, per workload.
SUMMARY_METRICS: dict[str, tuple[str, ...]] = {
    "commands": ("rate", "elapsed_s", "cpu_us_per_msg", "send_mean_ms"),
    "events": ("rate", "deliveries_rate", "elapsed_s", "cpu_us_per_msg", "send_mean_ms"),
    "memory": ("rate", "elapsed_s", "cpu_us_per_msg"),
    "latency": (
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "max_ms",
        "achieved_rate",
        "send_lateness_p99_ms",
        "send_p50_ms",
        "send_p99_ms",
    ),
    "outbox-relay": (
        "relay_vs_direct",
        "relay_rate",
        "direct_rate",
        "relay_cpu_us_per_msg",
        "direct_cpu_us_per_msg",
        "fill_rate",
    ),
    "outbox-handler": ("rate", "elapsed_s", "cpu_us_per_msg", "send_mean_ms"),
    "saga": ("rate", "start_rate", "update_rate", "elapsed_s", "cpu_us_per_msg", "conflicts"),
    "tracing": ("rate", "elapsed_s", "cpu_us_per_msg", "spans_per_msg", "traced"),
    "tracing-rabbit": ("rate", "elapsed_s", "cpu_us_per_msg", "spans_per_msg", "traced"),
    "rss": ("rss_start_mb", "rss_end_mb", "growth_mb", "live_blocks_growth", "rate"),
}


def summarise(runs: Sequence[dict[str, Any]]) -> Summary:
    """``{workload: {system: {...}}}`` with medians over the successful repeats.

    Each entry has the medians of :data:`SUMMARY_METRICS`, ``values`` (the primary metric of
    every successful repeat, in run order), ``peak_rss_mb`` (median), ``ok``/``failed`` counts,
    the first ``error``, and ``vs_baseline``: the primary metric's median divided by the
    workload's baseline row's (plain aio-pika, or busline itself for the outbox and tracing
    workloads, the plain handler on the same store for a saga row, see
    :func:`benchmarks.systems.baseline_of`; ``nan`` where it did not run).
    """
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for run in runs:
        grouped.setdefault(run["workload"], {}).setdefault(run["system"], []).append(run)

    summary: Summary = {}
    for workload, by_system in grouped.items():
        metric, _ = PRIMARY_METRIC[workload]
        rows: dict[str, dict[str, Any]] = {}
        for system in _ordered(workload, by_system):
            system_runs = by_system[system]
            good = [run for run in system_runs if run.get("ok")]
            failed = [run for run in system_runs if not run.get("ok")]
            # .get: a metric missing from a run (an older result file) shows as "—", not a crash.
            # float(): booleans ("traced") count as 0/1, so their median says "in every run".
            row: dict[str, Any] = {
                name: median([float(run["metrics"].get(name, math.nan)) for run in good])
                for name in SUMMARY_METRICS[workload]
            }
            row["values"] = [run["metrics"][metric] for run in good]
            row["peak_rss_mb"] = median([run["peak_rss_mb"] for run in good])
            row["ok"] = len(good)
            row["failed"] = len(failed)
            row["error"] = failed[0].get("error", "failed") if failed else None
            if workload == "rss" and good:
                # The run whose growth is the median, for the chart's RSS-over-time line.
                middle = sorted(good, key=lambda run: run["metrics"]["growth_mb"])[len(good) // 2]
                row["samples"] = middle["metrics"]["samples"]
            rows[system] = row
        for system, row in rows.items():
            base = rows.get(baseline_of(workload, system), {}).get(metric, math.nan)
            row["vs_baseline"] = _ratio(row[metric], base)
        summary[workload] = rows
    return summary


def _ordered(workload: str, systems: dict[str, Any]) -> list[str]:
    """The workload's own system order (its baseline first, for the tracing rows), then the
    registry's, then any unknown name."""
    order = [*WORKLOAD_SYSTEMS.get(workload, ()), *SYSTEMS]
    known = [name for name in dict.fromkeys(order) if name in systems]
    return known + sorted(name for name in systems if name not in known)


def _ratio(value: float, base: float) -> float:
    if math.isnan(value) or math.isnan(base) or base == 0:
        return math.nan
    return value / base


@dataclass(frozen=True)
class Goal:
    """One target from the issue, evaluated on this run."""

    goal: str
    target: str
    measured: str
    #: ``True`` pass, ``False`` miss, ``None`` not measured in this run.
    passed: bool | None
    #: How far inside the target, in percent of the target (negative: missed by that much).
    margin_pct: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        return {
            "goal": self.goal,
            "target": self.target,
            "measured": self.measured,
            "passed": self.passed,
            "margin_pct": self.margin_pct,
        }


def _get(summary: Summary, workload: str, system: str, key: str) -> float:
    return float(summary.get(workload, {}).get(system, {}).get(key, math.nan))


def _goal(name: str, measured: float, target: float, unit: str, fmt: str, *, most: bool) -> Goal:
    """``measured`` against ``target``: at least it (``most=False``) or at most it."""
    sign = "≤" if most else "≥"
    if math.isnan(measured):
        return Goal(name, f"{sign} {target:{fmt}}{unit}", "not measured", None)
    passed = measured <= target if most else measured >= target
    # Positive: inside the target by that share of it; negative: missed by that much.
    margin = (1 - measured / target if most else measured / target - 1) * 100
    return Goal(name, f"{sign} {target:{fmt}}{unit}", f"{measured:{fmt}}{unit}", passed, margin)


#: ``(goal, measured, target, unit, format, at most?)``.
Target = tuple[str, float, float, str, str, bool]


def _issue_16(summary: Summary) -> list[Target]:
    """The store path against no store on each store, the memory path against a bare queue."""
    stores = [
        (
            f"handler with the outbox vs no store, {name} (issue 16)",
            _get(summary, "outbox-handler", system, "vs_baseline"),
            *(0.5, TIMES, ".2f", False),
        )
        for name, system in (("SQLite", "busline-sqlite"), ("PostgreSQL", "busline-postgresql"))
    ]
    memory = (
        "memory transport vs a bare asyncio.Queue (issue 16)",
        _get(summary, "memory", "busline-memory", "vs_baseline"),
        *(0.3, TIMES, ".2f", False),
    )
    return [*stores, memory]


def evaluate_goals(summary: Summary) -> list[Goal]:
    """The issue's targets for busline (classic queues, like for like), each pass or miss.

    Issue 5: the relay against direct publishing on PostgreSQL. Issue 6: tracing with no SDK
    configured costs at most 5% on the memory transport (rate lost against ``tracing=False``);
    faster than untraced is noise, reported as it is (a negative overhead). Issue 16: the
    handler with the outbox at least half as fast as without a store, on each store, and the
    memory transport at least 0.3 of a bare ``asyncio.Queue``.
    """
    busline_cmd = _get(summary, "commands", "busline", "rate")
    untraced = _get(summary, "tracing", "busline-memory-untraced", "rate")
    overhead = (1 - _ratio(_get(summary, "tracing", "busline-memory", "rate"), untraced)) * 100
    targets: list[Target] = [
        (
            "commands end to end: busline vs plain aio-pika",
            _ratio(busline_cmd, _get(summary, "commands", BASELINE, "rate")),
            *(1.3, TIMES, ".2f", False),
        ),
        (
            "commands end to end: busline vs FastStream",
            _ratio(busline_cmd, _get(summary, "commands", "faststream", "rate")),
            *(2.0, TIMES, ".2f", False),
        ),
        (
            "events fan-out: busline vs plain aio-pika",
            _ratio(
                _get(summary, "events", "busline", "rate"),
                _get(summary, "events", BASELINE, "rate"),
            ),
            *(1.3, TIMES, ".2f", False),
        ),
        (
            "memory transport, full stack",
            _get(summary, "memory", "busline-memory", "rate"),
            *(100_000, " msg/s", ",.0f", False),
        ),
        (
            "latency p99 at the offered rate: busline",
            _get(summary, "latency", "busline", "p99_ms"),
            *(5.0, " ms", ".2f", True),
        ),
        (
            "outbox relay vs direct publish, PostgreSQL (issue 5)",
            _get(summary, "outbox-relay", "busline-postgresql", "relay_vs_direct"),
            *(0.8, TIMES, ".2f", False),
        ),
        (
            "tracing overhead with no SDK, memory transport (issue 6)",
            *(overhead, 5.0, "%", ".1f", True),
        ),
        *_issue_16(summary),
    ]
    targets += [
        (
            f"RSS growth over the long run: {system}",
            _get(summary, "rss", system, "growth_mb"),
            *(20.0, " MB", ".1f", True),
        )
        for system in ("busline", "busline-memory")
        if system in summary.get("rss", {})
    ]
    return [_goal(*target[:5], most=target[5]) for target in targets]
