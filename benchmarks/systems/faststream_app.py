"""FastStream: a RabbitBroker with a subscriber per queue and a publisher, as its docs show.

Durability matches the other systems:
- publisher confirms: on by default on FastStream's channels (``Channel.publisher_confirms``
  defaults to ``True``, so ``publish`` awaits the broker's confirm); set explicitly here;
- persistent messages: ``persist=True`` on the publisher (FastStream's default is transient);
- manual ack after the handler: ``AckPolicy.REJECT_ON_ERROR`` (FastStream's default) acks once
  the handler returned and rejects if it raised;
- durable classic queues, a durable fanout exchange for events, ``prefetch_count`` per consumer.

The payload is a pydantic model, FastStream's idiomatic typed body (it validates on receive as
busline's msgspec types do). FastStream's per-message INFO logging is switched off
(``logger=None``): no system in the suite logs per message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.publisher import RabbitPublisher
from faststream.rabbit.schemas import Channel
from pydantic import create_model

from benchmarks.payload import PAYLOAD_FIELDS, payload_fields
from benchmarks.spec import Topology
from benchmarks.systems.base import OnMessage

#: The suite's payload as a FastStream message body (a module-level model, so that FastStream
#: can resolve the handler's annotation).
BenchPayload = create_model(
    "BenchPayload", **{name: (kind, ...) for name, kind in PAYLOAD_FIELDS.items()}
)


class FastStreamApp:
    """A FastStream application with the suite's topology."""

    def __init__(self) -> None:
        self._broker: RabbitBroker | None = None
        self._publisher: RabbitPublisher | None = None

    async def start(self, topology: Topology, on_message: OnMessage) -> None:
        """Register subscribers and the publisher, then start the broker."""
        broker = RabbitBroker(
            topology.url,
            default_channel=Channel(prefetch_count=topology.prefetch, publisher_confirms=True),
            logger=None,
        )
        if topology.kind == "event":
            exchange = RabbitExchange(topology.exchange, type=ExchangeType.FANOUT, durable=True)
            for index, name in enumerate(topology.subscriber_queues):
                broker.subscriber(
                    RabbitQueue(name, durable=True),
                    exchange,
                    ack_policy=AckPolicy.REJECT_ON_ERROR,
                )(_handler(index, on_message))
            self._publisher = broker.publisher(exchange=exchange, persist=True)
        else:
            queue = RabbitQueue(topology.queue, durable=True)
            broker.subscriber(queue, ack_policy=AckPolicy.REJECT_ON_ERROR)(_handler(0, on_message))
            self._publisher = broker.publisher(queue, persist=True)
        self._broker = broker
        await broker.start()

    async def send(self, seq: int, sent_at: float) -> None:
        """Publish one persistent message and wait for its confirm."""
        assert self._publisher is not None, "start() first"
        await self._publisher.publish(BenchPayload(**payload_fields(seq, sent_at)))

    async def stop(self) -> None:
        """Stop the subscribers (in-flight handlers finish and ack) and disconnect."""
        if self._broker is not None:
            await self._broker.stop()
            self._broker = None


def _handler(index: int, on_message: OnMessage) -> Callable[[Any], Awaitable[None]]:
    """A subscriber function for subscriber ``index``.

    Its annotation must stay resolvable by FastStream (a module-level model), since FastStream
    reads it to decode and validate the body.
    """

    async def handle(body: BenchPayload) -> None:
        on_message(index, body.seq, body.sent_at)

    return handle
