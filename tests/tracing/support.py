"""Reading recorded spans and metrics in tests: by name, as a tree, with a deadline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support import eventually


class Spans:
    """The spans a test's tracer provider finished."""

    def __init__(self, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
        self.provider = provider
        self.exporter = exporter

    def all(self) -> Sequence[ReadableSpan]:
        return self.exporter.get_finished_spans()

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.all() if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"expected one span {name!r}, got {len(found)}: {self.names()}"
        return found[0]

    def names(self) -> list[str]:
        return sorted(span.name for span in self.all())

    async def wait_for(self, *names: str, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until each of ``names`` finished (at least ``count`` times)."""

        def done() -> bool:
            return all(len(self.named(name)) >= count for name in names)

        await eventually(done, timeout, f"spans {names} (have {self.names()})")


def is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    """Whether ``child``'s parent is ``parent`` (same trace, parent span id)."""
    return (
        child.parent is not None
        and child.parent.span_id == parent.context.span_id
        and child.context.trace_id == parent.context.trace_id
    )


def links_to(span: ReadableSpan, target: ReadableSpan) -> bool:
    """Whether ``span`` has a link to ``target``."""
    return any(
        link.context.span_id == target.context.span_id
        and link.context.trace_id == target.context.trace_id
        for link in span.links
    )


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def events(span: ReadableSpan, name: str) -> list[dict[str, Any]]:
    """The attributes of each event ``name`` on ``span``, in order."""
    return [dict(event.attributes or {}) for event in span.events if event.name == name]


class Metrics:
    """The metrics a test's meter provider recorded."""

    def __init__(self, provider: MeterProvider, reader: InMemoryMetricReader) -> None:
        self.provider = provider
        self.reader = reader

    def collect(self) -> dict[str, Any]:
        """Every metric by name (the SDK's Metric objects), as of now."""
        data = self.reader.get_metrics_data()
        found: dict[str, Any] = {}
        if data is None:
            return found
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    found[metric.name] = metric
        return found

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """``(attributes, point)`` for each data point of metric ``name``."""
        metric = self.collect().get(name)
        if metric is None:
            return []
        return [(dict(point.attributes or {}), point) for point in metric.data.data_points]
