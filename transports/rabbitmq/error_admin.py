"""The error queue of a RabbitMQ broker, for ``busline errors`` and :mod:`busline.errorqueue`.

This is an operator's tool, not a hot path, so it uses aio-pika for clarity. Browsing takes the
messages unacknowledged and returns them by closing the channel; replay publishes each chosen
message to its original queue and acks its error copy only after the broker confirmed the
publish, so a crash in between can duplicate a message but never lose one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from busline.errorqueue import ParkedMessage, replay_headers, select
from busline.urls import mask_url


def _parked(message: AbstractIncomingMessage) -> ParkedMessage:
    headers: dict[str, Any] = {
        k: v.decode() if isinstance(v, bytes) else v for k, v in (message.headers or {}).items()
    }
    return ParkedMessage(message.message_id or "", message.type or "", message.body, headers)


class RabbitMQErrorQueue:
    """Browse, replay and purge a RabbitMQ error queue."""

    def __init__(self, connection: AbstractRobustConnection, error_queue: str) -> None:
        self._connection = connection
        self._error_queue = error_queue

    @classmethod
    async def open(cls, url: str, error_queue: str) -> RabbitMQErrorQueue:
        """Connect to the broker at ``url``."""
        try:
            connection = await aio_pika.connect_robust(url)
        except Exception as exc:
            raise ConnectionError(
                f"cannot connect to {mask_url(url)}: {type(exc).__name__}"
            ) from None
        return cls(connection, error_queue)

    async def _take_all(
        self, channel: aio_pika.abc.AbstractChannel, limit: int | None
    ) -> list[AbstractIncomingMessage]:
        queue = await channel.get_queue(self._error_queue, ensure=True)
        taken: list[AbstractIncomingMessage] = []
        while limit is None or len(taken) < limit:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            taken.append(message)
        return taken

    async def browse(self, limit: int | None = None) -> list[ParkedMessage]:
        """The parked messages, oldest first; closing the channel puts them all back."""
        async with self._connection.channel() as channel:
            return [_parked(message) for message in await self._take_all(channel, limit)]

    async def replay(self, message_ids: Iterable[str] | None = None) -> list[str]:
        """Send the chosen messages back to their original queues with fresh counters."""
        replayed: list[str] = []
        async with self._connection.channel(publisher_confirms=True) as channel:
            taken = await self._take_all(channel, None)
            chosen = select([_parked(m) for m in taken], message_ids)
            for message in taken:
                parked = _parked(message)
                if parked.message_id not in chosen:
                    continue
                fresh = aio_pika.Message(
                    body=message.body,
                    headers=replay_headers(parked.headers),
                    content_type=message.content_type,
                    message_id=message.message_id,
                    correlation_id=message.correlation_id,
                    type=message.type,
                    app_id=message.app_id,
                    timestamp=message.timestamp,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                # Confirmed (publisher_confirms) before the error copy is acked.
                await channel.default_exchange.publish(
                    fresh, routing_key=parked.original_queue, mandatory=True
                )
                await message.ack()
                replayed.append(parked.message_id)
        return replayed

    async def purge(self) -> int:
        """Delete every parked message; return how many."""
        async with self._connection.channel() as channel:
            queue = await channel.get_queue(self._error_queue, ensure=True)
            result = await queue.purge()
            return int(result.message_count or 0)

    async def close(self) -> None:
        """Close the connection."""
        await self._connection.close()
