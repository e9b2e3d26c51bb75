"""Plain aio-pika, the baseline: the code its documentation shows, with the suite's durability.

- a robust connection, one channel with publisher confirms for publishing (aio-pika's default:
  ``publish`` returns once the broker confirmed);
- one consuming channel with ``basic.qos(prefetch)`` (per consumer, RabbitMQ's semantics);
- durable queues (classic, the broker default), a durable fanout exchange for events;
- persistent messages, JSON bodies with the standard library's ``json``;
- a consumer callback per queue that handles each message inside ``async with
  message.process()``, which acks it (one ``basic.ack`` per message) after the block succeeded.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from benchmarks.payload import payload_fields
from benchmarks.spec import Topology
from benchmarks.systems.base import OnMessage


class AioPikaPlain:
    """The plain-client baseline."""

    def __init__(self) -> None:
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._routing_key = ""
        self._consumers: list[tuple[AbstractQueue, str]] = []

    async def start(self, topology: Topology, on_message: OnMessage) -> None:
        """Connect, declare, and start one consumer per queue."""
        self._connection = connection = await aio_pika.connect_robust(topology.url)
        publish_channel = await connection.channel(publisher_confirms=True)
        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=topology.prefetch)

        if topology.kind == "event":
            # Declared on both channels: an exchange object publishes through its own channel.
            exchange = await consume_channel.declare_exchange(
                topology.exchange, aio_pika.ExchangeType.FANOUT, durable=True
            )
            self._exchange = await publish_channel.declare_exchange(
                topology.exchange, aio_pika.ExchangeType.FANOUT, durable=True
            )
            self._routing_key = ""
        else:
            self._exchange = publish_channel.default_exchange
            self._routing_key = topology.queue

        for index, name in enumerate(topology.consumer_queues):
            queue = await consume_channel.declare_queue(name, durable=True)
            if topology.kind == "event":
                await queue.bind(exchange)
            tag = await queue.consume(_handler(index, on_message))
            self._consumers.append((queue, tag))

    async def send(self, seq: int, sent_at: float) -> None:
        """Publish one persistent JSON message and wait for its confirm."""
        assert self._exchange is not None, "start() first"
        body = json.dumps(payload_fields(seq, sent_at)).encode()
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self._exchange.publish(message, routing_key=self._routing_key)

    async def stop(self) -> None:
        """Cancel the consumers, then close the connection."""
        for queue, tag in self._consumers:
            await queue.cancel(tag)
        self._consumers.clear()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


def _handler(
    index: int, on_message: OnMessage
) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    """The consumer callback for subscriber ``index``."""

    async def handle(message: AbstractIncomingMessage) -> None:
        async with message.process():
            data = json.loads(message.body)
            on_message(index, data["seq"], data["sent_at"])

    return handle
