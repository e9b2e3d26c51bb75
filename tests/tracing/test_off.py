"""Tracing off costs nothing: with no SDK configured, nothing is installed; and the switch."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry import trace

from busline import Bus
from busline.testing import memory_url
from busline.tracing import sdk_configured
from tests.tracing.messages import PlaceOrder

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_global_sdk() -> None:
    if sdk_configured():
        pytest.skip("a global OpenTelemetry SDK provider was installed by another test")


async def run_one(bus: Bus) -> None:
    handled = asyncio.Event()

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        # Still the untouched API default: nothing made a span current.
        assert not trace.get_current_span().get_span_context().is_valid
        handled.set()

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1"))
        await asyncio.wait_for(handled.wait(), 10)


async def test_without_an_sdk_nothing_is_installed(no_global_sdk):
    bus = Bus("shop", memory_url())
    await run_one(bus)
    assert bus.telemetry is None


async def test_tracing_false_wins_over_providers(spans, no_global_sdk):
    bus = Bus("shop", memory_url(), tracing=False, tracer_provider=spans.provider)
    await run_one(bus)
    assert bus.telemetry is None
    assert spans.all() == ()


async def test_tracing_true_without_an_sdk_installs_the_api_no_op_path(no_global_sdk):
    bus = Bus("shop", memory_url(), tracing=True)
    await run_one(bus)
    assert bus.telemetry is not None


def test_a_globally_configured_sdk_turns_tracing_on_by_itself():
    # The global provider can be set once per process, so this runs in its own.
    script = textwrap.dedent(
        """
        import asyncio
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from busline import Bus
        from busline.testing import memory_url
        from tests.tracing.messages import PlaceOrder

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)

        async def main():
            bus = Bus("shop", memory_url())
            done = asyncio.Event()

            @bus.command_handler
            async def place(cmd: PlaceOrder) -> None:
                done.set()

            async with bus:
                await bus.send(PlaceOrder(order_id="o-1"))
                await asyncio.wait_for(done.wait(), 10)
            assert bus.telemetry is not None
            print(sorted(span.name for span in exporter.get_finished_spans()))

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['process shop.PlaceOrder', 'send shop.PlaceOrder']"
