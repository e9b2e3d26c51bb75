"""Tracing fixtures: an SDK tracer provider and meter provider per test, recording in memory.

They are passed to each bus (``Bus(tracer_provider=..., meter_provider=...)``) rather than
installed globally: the global providers can be set only once per process, and a test that needs
"no SDK at all" must still see the API's defaults.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.tracing.support import Metrics, Spans


@pytest.fixture
def spans() -> Iterator[Spans]:
    """Spans finished during the test, exported synchronously as each one ends."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Spans(provider, exporter)
    provider.shutdown()


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    """Metrics recorded during the test, read on demand."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield Metrics(provider, reader)
    provider.shutdown()


@pytest.fixture
def traced(spans: Spans, metrics: Metrics) -> dict[str, object]:
    """Bus options that send this test's spans and metrics to the in-memory recorders."""
    return {"tracer_provider": spans.provider, "meter_provider": metrics.provider}
