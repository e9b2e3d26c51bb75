"""One run in its own process: ``python -m benchmarks.worker --spec JSON --result PATH``.

:func:`execute` is also what the smoke test calls in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import traceback
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

from benchmarks.amqp_tools import check_and_clean
from benchmarks.harness import MIB, current_rss, peak_rss
from benchmarks.probe import Probe
from benchmarks.spec import RunSpec, topology_for
from benchmarks.systems import SYSTEMS, create
from benchmarks.workloads import WORKLOAD_FUNCTIONS, no_probe


async def execute(spec: RunSpec) -> dict[str, Any]:
    """Run ``spec`` and return its metrics; raise if the system failed or lost a message.

    After a RabbitMQ run every queue of the run must be empty (all acked, nothing in the error
    queue); the run's queues and exchange are deleted either way.
    """
    info = SYSTEMS[spec.system]
    if spec.workload not in WORKLOAD_FUNCTIONS:
        raise ValueError(f"unknown workload {spec.workload!r}")
    topology = topology_for(spec, spec.amqp_url)
    baseline_rss = current_rss()
    system = create(spec.system)
    try:
        metrics = await WORKLOAD_FUNCTIONS[spec.workload](spec, system, topology, _probe(spec))
    except BaseException:
        if info.broker:
            # Tidy the broker, but let the run's own error be the one reported.
            with contextlib.suppress(Exception):
                await check_and_clean(topology)
        raise
    if info.broker:
        left = await check_and_clean(topology)
        if left:
            raise RuntimeError(f"messages left on the broker after the run (never acked): {left}")
    if metrics.get("duplicates") or metrics.get("unexpected"):
        raise RuntimeError(
            f"{metrics['duplicates']} duplicate and {metrics['unexpected']} unexpected deliveries "
            "(redeliveries: did the connection drop?)"
        )
    return {
        "ok": True,
        "metrics": metrics,
        "peak_rss_mb": peak_rss() / MIB,
        "baseline_rss_mb": baseline_rss / MIB,
    }


def _probe(spec: RunSpec) -> Probe:
    """A pyinstrument probe when the spec asks for a profile, else a no-op."""
    if not spec.profile_path:
        return no_probe
    path = Path(spec.profile_path)

    @contextlib.contextmanager
    def profiled() -> Iterator[None]:
        from pyinstrument import Profiler

        # async_mode="disabled": sample the whole event-loop thread, every task, which is where
        # a message bus spends its time; "enabled" would only follow the awaiting coroutine.
        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
        try:
            yield
        finally:
            profiler.stop()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.with_suffix(".txt").write_text(
                profiler.output_text(unicode=True, color=False, show_all=False)
            )
            path.with_suffix(".html").write_text(profiler.output_html())

    return profiled


def _run(coro: Coroutine[Any, Any, dict[str, Any]], use_uvloop: bool) -> dict[str, Any]:
    factory = None
    if use_uvloop:
        import uvloop

        factory = uvloop.new_event_loop
    # asyncio.Runner, not asyncio.run: Python 3.11's run() has no loop_factory.
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def main(argv: list[str] | None = None) -> int:
    """Run one spec and write its result as JSON; exit 0 if it succeeded."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("--spec", required=True, help="RunSpec as JSON")
    parser.add_argument("--result", required=True, type=Path, help="where to write the result")
    args = parser.parse_args(argv)
    spec = RunSpec.from_json(args.spec)
    try:
        result = _run(execute(spec), spec.uvloop)
    except BaseException as exc:
        result = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc()[-4000:],
            "peak_rss_mb": peak_rss() / MIB,
        }
    args.result.write_text(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
