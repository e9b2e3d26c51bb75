"""A plain AMQP client (aio-pika) to look at queues and to publish what busline never would:
the suite does not check busline with busline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aio_pika
import aiormq
from pamqp import encode

ERROR_QUEUE = "busline.error"


async def ready_count(url: str, queue: str) -> int:
    """Messages ready in ``queue``; 0 when it does not exist (yet)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aiormq.ChannelNotFoundEntity:
            return 0
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def drain(url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take every message now ready in ``queue`` (acknowledged: they are gone afterwards)."""
    connection = await aio_pika.connect(url)
    taken: list[aio_pika.abc.AbstractIncomingMessage] = []
    try:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aiormq.ChannelNotFoundEntity:
            return taken
        for _ in range(1_000_000):  # bounded: stops at the first empty get
            message = await declared.get(fail=False, no_ack=True)
            if message is None:
                break
            taken.append(message)
        return taken
    finally:
        await connection.close()


async def until(
    check: Callable[[], bool] | Callable[[], Awaitable[bool]],
    deadline: float,
    interval: float = 0.05,
) -> bool:
    """Poll ``check`` until it is true (True) or the monotonic ``deadline`` passes (False)."""
    while True:
        value = check()
        if not isinstance(value, bool):
            value = await value
        if value:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


def _short_string(value: str | bytes) -> bytes:
    """pamqp's shortstr encoder, which also takes raw bytes (any client in another language
    can put bytes that are not UTF-8 in a property)."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8")
    if len(raw) > 255:
        raise TypeError("short string longer than 255 bytes")
    return bytes([len(raw)]) + raw


@contextmanager
def raw_property_bytes() -> Iterator[None]:
    """While open, AMQP short-string properties may be given as raw bytes.

    Only the encoder learns a new input type; strings encode exactly as before, so a busline
    bus running in the same process publishes unchanged.
    """
    saved = encode.METHODS["shortstr"]
    encode.METHODS["shortstr"] = _short_string
    try:
        yield
    finally:
        encode.METHODS["shortstr"] = saved


async def publish_raw(
    channel: aio_pika.abc.AbstractChannel, queue: str, body: bytes, **properties: Any
) -> None:
    """Publish ``body`` with exactly ``properties`` to ``queue`` (default exchange)."""
    properties.setdefault("delivery_mode", aio_pika.DeliveryMode.PERSISTENT)
    await channel.default_exchange.publish(aio_pika.Message(body, **properties), queue)
