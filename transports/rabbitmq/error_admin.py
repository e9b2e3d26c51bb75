"""The error queue of a RabbitMQ broker, for ``busline errors`` and :mod:`busline.errorqueue`.

An operator's tool, not a hot path, on busline's AMQP client like the transport (one client, not
two).
Browsing takes the messages unacknowledged (``basic.get``) and returns them by closing the
channel; replay publishes each chosen message to its original queue and acks its error copy only
after the broker confirmed the publish, so a crash in between can duplicate a message but never
lose one. A replayed message the broker returns (its original queue no longer exists) keeps its
error copy and is left out of the ids returned.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from pamqp.commands import Basic

from busline.errorqueue import ParkedMessage, replay_headers, select
from busline.urls import mask_url

from . import amqp
from .config import node_urls
from .wire import PERSISTENT, wire_table

log = logging.getLogger("busline.rabbitmq")


def _parked(message: amqp.Delivery) -> ParkedMessage:
    properties = message.properties
    headers: dict[str, Any] = {
        k: v.decode() if isinstance(v, bytes) else v for k, v in (properties.headers or {}).items()
    }
    return ParkedMessage(
        properties.message_id or "", properties.message_type or "", message.body, headers
    )


def _replay_properties(
    properties: Basic.Properties, headers: Mapping[str, Any]
) -> Basic.Properties:
    """The properties of a replayed copy: the original's, fresh headers, persistent."""
    return Basic.Properties(
        content_type=properties.content_type,
        headers=wire_table(replay_headers(headers)),
        delivery_mode=PERSISTENT,
        correlation_id=properties.correlation_id,
        message_id=properties.message_id,
        timestamp=properties.timestamp,
        message_type=properties.message_type,
        app_id=properties.app_id,
    )


class RabbitMQErrorQueue:
    """Browse, replay and purge a RabbitMQ error queue."""

    def __init__(self, connection: amqp.Connection, error_queue: str) -> None:
        self._connection = connection
        self._error_queue = error_queue

    @classmethod
    async def open(cls, url: str, error_queue: str) -> RabbitMQErrorQueue:
        """Connect to the broker at ``url`` (with several nodes, comma-separated, to the first
        that answers)."""
        failures: list[str] = []
        for node in node_urls(url):
            try:
                connection = await amqp.connect(node)
            except Exception as exc:
                failures.append(f"{mask_url(node)}: {type(exc).__name__}")
                continue
            return cls(connection, error_queue)
        raise ConnectionError(f"cannot connect to {'; '.join(failures) or 'no URL'}")

    @asynccontextmanager
    async def _channel(self, confirms: bool = False) -> AsyncIterator[amqp.Channel]:
        """A channel on which the error queue exists, closed afterwards (which returns
        whatever was taken and not acked to the queue)."""
        channel = await self._connection.channel(confirms=confirms)
        try:
            # Passive: a missing error queue is an error here, not something to create.
            await channel.queue_declare(self._error_queue, passive=True)
            yield channel
        finally:
            if not channel.is_closed:
                await channel.close(grace=10)

    async def _take_all(self, channel: amqp.Channel, limit: int | None) -> list[amqp.Delivery]:
        taken: list[amqp.Delivery] = []
        while limit is None or len(taken) < limit:
            message = await channel.basic_get(self._error_queue, no_ack=False)
            if message is None:
                break
            taken.append(message)
        return taken

    async def browse(self, limit: int | None = None) -> list[ParkedMessage]:
        """The parked messages, oldest first; closing the channel puts them all back."""
        async with self._channel() as channel:
            return [_parked(message) for message in await self._take_all(channel, limit)]

    async def replay(self, message_ids: Iterable[str] | None = None) -> list[str]:
        """Send the chosen messages back to their original queues with fresh counters."""
        replayed: list[str] = []
        async with self._channel(confirms=True) as channel:
            taken = await self._take_all(channel, None)
            chosen = select([_parked(m) for m in taken], message_ids)
            for message in taken:
                parked = _parked(message)
                if parked.message_id not in chosen:
                    continue
                try:
                    # Returns once confirmed (a confirm channel), before the error copy is acked.
                    await channel.publish(
                        message.body,
                        "",
                        parked.original_queue,
                        _replay_properties(message.properties, parked.headers),
                        mandatory=True,
                    )
                except amqp.UnroutableError:
                    log.warning(
                        "%s: not replayed, queue %r does not exist; it stays in %s",
                        parked.message_id,
                        parked.original_queue,
                        self._error_queue,
                    )
                    continue
                channel.ack(message.delivery_tag)
                replayed.append(parked.message_id)
        return replayed

    async def purge(self) -> int:
        """Delete every parked message; return how many."""
        async with self._channel() as channel:
            return await channel.queue_purge(self._error_queue)

    async def close(self) -> None:
        """Close the connection."""
        await self._connection.close()
