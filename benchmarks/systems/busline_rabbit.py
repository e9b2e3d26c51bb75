"""busline on its RabbitMQ transport: ``Bus(url="amqp://...", queue_type=..., prefetch=...)``.

busline's durability is built in: persistent messages, ``send``/``publish`` return after the
publisher confirm, ack after the handler, durable queues. ``queue_type="classic"`` matches the
other systems; the ``busline-quorum`` row runs busline's quorum default. The outbox rows
(``busline-sqlite``, ``busline-postgresql``, and their ``-saga`` rows with ``saga=True``, see
:mod:`benchmarks.sagas`) and the tracing rows (``busline-untraced``,
``busline-otel``) are this same system with ``store=`` or ``telemetry=``.
"""

from __future__ import annotations

from typing import Literal

from benchmarks.stores import StoreKind
from benchmarks.systems.busline_common import BuslineSystem


class BuslineRabbit(BuslineSystem):
    """busline with ``amqp://`` URLs."""

    def __init__(
        self,
        queue_type: Literal["classic", "quorum"] = "classic",
        *,
        store: StoreKind | None = None,
        telemetry: str = "auto",
        outbox_retention: float | None = None,
        saga: bool = False,
    ) -> None:
        super().__init__(
            store=store,
            telemetry=telemetry,
            outbox_retention=outbox_retention,
            queue_type=queue_type,
        )
        #: ``saga`` workload: whether the commands drive a saga (``True``) or a plain handler.
        self.saga = saga
