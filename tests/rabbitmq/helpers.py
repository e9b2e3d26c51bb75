"""Plain-client helpers for the RabbitMQ suite: busline is never used to check busline."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection

from busline import Command, Event

ROOT = Path(__file__).resolve().parents[2]


class PlaceOrder(Command, wire_name="rmq.PlaceOrder"):
    order_id: str
    amount: float


class OrderPlaced(Event, wire_name="rmq.OrderPlaced"):
    order_id: str


@asynccontextmanager
async def plain_channel(url: str) -> AsyncIterator[AbstractChannel]:
    """A confirm-mode aio-pika channel on its own connection."""
    connection: AbstractConnection = await aio_pika.connect(url)
    try:
        yield await connection.channel(publisher_confirms=True)
    finally:
        await connection.close()


async def queue_type(url: str, queue: str) -> str:
    """``quorum`` or ``classic``: re-declaring with the other type's arguments is refused."""
    async with plain_channel(url) as channel:
        try:
            await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
        except aiormq.ChannelPreconditionFailed:
            return "classic"
        return "quorum"


async def ready_count(url: str, queue: str) -> int:
    """Messages ready in ``queue`` (a passive declare, so it must exist)."""
    async with plain_channel(url) as channel:
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


def vhost_of(url: str) -> str:
    """The vhost named by an AMQP URL."""
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def unacked_in_vhost(url: str) -> int:
    """Messages delivered to consumers and not yet acked, over every channel in the URL's vhost
    (channel statistics are exact for every queue type; queue statistics of quorum queues lag)."""
    out = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "services.sh"),
            "rabbitmqctl",
            "-q",
            "list_channels",
            "vhost",
            "messages_unacknowledged",
            "--no-table-headers",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    vhost = vhost_of(url)
    total = 0
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[0] == vhost:
            total += int(parts[1])
    return total


def plain_message(body: bytes, **properties: Any) -> aio_pika.Message:
    """A persistent message with exactly the given properties."""
    properties.setdefault("delivery_mode", aio_pika.DeliveryMode.PERSISTENT)
    return aio_pika.Message(body, **properties)
