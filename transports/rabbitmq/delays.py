"""Delayed redelivery without the delayed-message plugin and without holding the message.

A deferred message is published to a *delay level*: a fanout exchange ``busline.delay.<ms>``
bound to a durable queue of the same name whose ``x-message-ttl`` is ``<ms>`` and whose
dead-letter exchange is the default exchange. The message waits there, expires, and is
dead-lettered through the default exchange with its original routing key, which is the name of
the queue it came from: it reappears there. The consumer acks the original only after the broker
confirmed the copy in the delay queue, so nothing is held in memory meanwhile and a crash loses
nothing.

Every message of one level has the same TTL, so expiry is strictly first-in first-out (per-message
TTLs would block behind a longer one at the head). Delays are rounded *up* to two significant
digits of milliseconds (1234 ms waits 1300 ms), which bounds the number of levels (at most 90 per
decade) even when retry delays are jittered.

Quorum delay queues use at-least-once dead-lettering (RabbitMQ 3.10+), so a message is not lost
if the broker fails while moving it back; that strategy requires ``x-overflow=reject-publish``.
Classic delay levels are named ``busline.delay.<ms>.classic`` so that services using different
queue types in one vhost do not declare one queue with two sets of arguments.
"""

from __future__ import annotations

import math
from typing import Any

from pamqp.commands import Basic

from busline.transport import QueueType

from .properties import fast
from .publisher import Publisher
from .topology import Topology

DELAY_PREFIX = "busline.delay."


def delay_level(delay: float) -> int:
    """The delay level, in milliseconds, used for ``delay`` seconds (rounded up, >= 1 ms)."""
    ms = max(1, math.ceil(delay * 1000))
    if ms >= 100:
        step = 10 ** (len(str(ms)) - 2)
        ms = -(-ms // step) * step
    return ms


def delay_name(level_ms: int, queue_type: QueueType) -> str:
    """Name of the exchange and queue of a delay level."""
    name = f"{DELAY_PREFIX}{level_ms}"
    return name if queue_type == "quorum" else f"{name}.classic"


def delay_queue_arguments(level_ms: int, queue_type: QueueType) -> dict[str, Any]:
    """Arguments of a delay level's queue: expire after ``level_ms``, then go home."""
    args: dict[str, Any] = {"x-message-ttl": level_ms, "x-dead-letter-exchange": ""}
    if queue_type == "quorum":
        args["x-queue-type"] = "quorum"
        args["x-dead-letter-strategy"] = "at-least-once"
        args["x-overflow"] = "reject-publish"
    return args


class Delays:
    """Publishes deferred messages to their delay level, declaring levels on first use."""

    def __init__(self, topology: Topology, publisher: Publisher, queue_type: QueueType) -> None:
        self._topology = topology
        self._publisher = publisher
        self._queue_type = queue_type

    async def defer(
        self, queue: str, delay: float, body: bytes, properties: Basic.Properties
    ) -> None:
        """Have ``queue`` receive this message again after ``delay`` seconds; return once the
        broker confirmed it holds the copy."""
        encoded = fast(properties)
        if delay <= 0:
            await self._publisher.publish(
                exchange="",
                routing_key=queue,
                body=body,
                properties=encoded,
                mandatory=True,
            )
            return
        level = delay_level(delay)
        name = delay_name(level, self._queue_type)
        topology = self._topology
        arguments = delay_queue_arguments(level, self._queue_type)

        async def ensure() -> None:
            await topology.exchange(name)
            await topology.queue(name, arguments)
            await topology.binding(name, name)

        await self._publisher.publish(
            exchange=name,
            routing_key=queue,
            body=body,
            properties=encoded,
            mandatory=True,
            ensure=ensure,
            on_unroutable=lambda: topology.forget(("binding", name, name)),
            on_not_found=lambda: topology.forget(("exchange", name), ("queue", name)),
        )
