"""Broker housekeeping with a plain client: is it there, what version, and did a run leave
anything behind. Used outside the measured phase only."""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks.spec import Topology


async def server_version(url: str, within: float = 5.0) -> str:
    """The RabbitMQ version at ``url``; raises if it cannot be reached within ``within`` seconds."""
    import aiormq

    async with asyncio.timeout(within):
        connection = await aiormq.connect(url)
    try:
        properties: dict[str, Any] = dict(connection.server_properties or {})
        version = properties.get("version", "?")
        product = properties.get("product", "RabbitMQ")
        return f"{_text(product)} {_text(version)}"
    finally:
        await connection.close()


async def check_and_clean(topology: Topology, within: float = 30.0) -> dict[str, Any]:
    """Count the messages left in each of the run's queues, then delete its queues and exchange.

    Every system was stopped first, so a message still there was never acknowledged (or
    unacknowledged deliveries went back to the queue on close): the caller fails the run.
    Returns ``{queue: messages_left}`` for queues that were not empty; for the error queue,
    also the reason busline gave for parking its first message (``"<queue> why"``).
    """
    import aiormq

    left: dict[str, Any] = {}
    async with asyncio.timeout(within):
        connection = await aiormq.connect(topology.url)
        try:
            channel = await connection.channel()
            for name in (*topology.consumer_queues, *topology.extra_queues, topology.error_queue):
                try:
                    declared = await channel.queue_declare(name, passive=True)
                except aiormq.exceptions.ChannelNotFoundEntity:
                    channel = await connection.channel()  # a failed passive declare closes it
                    continue
                if declared.message_count:
                    # In a consumer queue: never acked; in the error queue: a handler failed.
                    left[name] = declared.message_count
                    if name == topology.error_queue:
                        left[f"{name} why"] = await _why_parked(channel, name)
                await channel.queue_delete(name)
            for name in topology.scratch_queues:
                # Filled on purpose (checked by the workload); only deleted here.
                await channel.queue_delete(name)
            if topology.kind == "event":
                await channel.exchange_delete(topology.exchange)
        finally:
            await connection.close()
    return left


async def queue_depths(url: str, names: tuple[str, ...], within: float = 30.0) -> dict[str, int]:
    """How many messages wait in each of ``names`` (``-1`` for a queue that does not exist).

    A workload whose output nobody consumes (the outbox sink, the relay's target) proves with
    this that every message it sent arrived, and only once, as far as a count can tell.
    """
    import aiormq

    depths: dict[str, int] = {}
    async with asyncio.timeout(within):
        connection = await aiormq.connect(url)
        try:
            channel = await connection.channel()
            for name in names:
                try:
                    declared = await channel.queue_declare(name, passive=True)
                except aiormq.exceptions.ChannelNotFoundEntity:
                    channel = await connection.channel()  # a failed passive declare closes it
                    depths[name] = -1
                    continue
                depths[name] = int(declared.message_count or 0)
        finally:
            await connection.close()
    return depths


async def _why_parked(channel: Any, queue: str) -> dict[str, str]:
    """The ``busline-error-*`` headers of the first message in an error queue."""
    message = await channel.basic_get(queue, no_ack=True)
    headers = dict(getattr(message.header.properties, "headers", None) or {})
    why: dict[str, str] = {}
    for key, value in headers.items():
        if str(key).startswith("busline-error"):
            text = _text(value)
            # A traceback's useful end is its last lines.
            why[str(key)] = text[-500:] if "traceback" in str(key) else text[:300]
    return why


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
