"""The metric instruments of one bus: the messaging conventions' four and busline's own three."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import metrics

from busline.tracing import semconv as sc


class Instruments:
    """Counters, histograms and the outbox backlog gauge, created once per bus."""

    def __init__(self, meter: metrics.Meter, service: str) -> None:
        self.service = service
        self.sent_messages = meter.create_counter(
            sc.METRIC_SENT_MESSAGES, "{message}", "Messages the producer attempted to send."
        )
        self.consumed_messages = meter.create_counter(
            sc.METRIC_CONSUMED_MESSAGES, "{message}", "Messages delivered to the application."
        )
        self.process_duration = meter.create_histogram(
            sc.METRIC_PROCESS_DURATION,
            "s",
            "Duration of processing one message (handler and middleware).",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS,
        )
        self.operation_duration = meter.create_histogram(
            sc.METRIC_OPERATION_DURATION,
            "s",
            "Duration of sending one message, until the broker confirmed it.",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS,
        )
        self.retries = meter.create_counter(
            sc.METRIC_RETRIES, "{retry}", "Failed attempts that will be tried again."
        )
        self.dead_lettered = meter.create_counter(
            sc.METRIC_DEAD_LETTERED, "{message}", "Messages moved to the error queue."
        )
        #: The latest outbox backlog the store reported (``None``: never, so nothing observed).
        self.backlog: int | None = None
        meter.create_observable_gauge(
            sc.METRIC_OUTBOX_BACKLOG,
            [self._observe_backlog],
            "{message}",
            "Messages committed to the outbox and not yet published.",
        )

    def _observe_backlog(self, options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        # Observable gauges are read synchronously by the metric reader and counting outbox rows
        # is a database query, so the store pushes the number and this reports the latest.
        if self.backlog is None:
            return []
        return [metrics.Observation(self.backlog, {sc.BUSLINE_SERVICE: self.service})]
