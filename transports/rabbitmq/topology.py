"""Queues, exchanges and bindings: what their arguments are, and declaring each once per
connection.

Commands: a durable queue named after the command's wire name, reached through the default
exchange. Events: a durable fanout exchange named after the event's wire name, and a durable queue
per subscriber bound to it. Queues are quorum queues unless the bus asks for classic ones.
Declarations are idempotent on the broker, but each is a round trip, so they are cached for the
life of a connection (a restarted broker may have lost non-durable state, so the cache starts
empty on every connection).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from busline.errors import PublishError
from busline.transport import QueueType

from . import amqp

log = logging.getLogger("busline.rabbitmq")

#: Channel errors that mean "the broker will not accept this declaration": retrying won't help.
_REFUSALS = (
    amqp.PreconditionFailedError,
    amqp.AccessRefusedError,
    amqp.NotFoundError,
    amqp.ResourceLockedError,
)

Key = tuple[str, ...]


class TopologyError(PublishError):
    """The broker refused a declaration, e.g. a queue exists with other arguments (type)."""


def queue_arguments(queue_type: QueueType) -> dict[str, Any]:
    """Arguments of busline's durable queues for a queue type.

    Classic queues get no ``x-queue-type`` at all: that is how most clients declare them, and an
    explicit ``classic`` is not equivalent to "absent" on every broker version.
    """
    if queue_type == "quorum":
        return {"x-queue-type": "quorum"}
    return {}


class Topology:
    """Declares on a channel of its own, so a refused declaration (which closes its channel)
    never takes publishes or consumers down with it."""

    def __init__(self, queue_type: QueueType, timeout: float) -> None:
        self.queue_type = queue_type
        self.queue_args = queue_arguments(queue_type)
        self._timeout = timeout
        self._connection: amqp.Connection | None = None
        self._channel: amqp.Channel | None = None
        self._channel_lock = asyncio.Lock()
        self._declared: dict[Key, asyncio.Future[None]] = {}

    def attach(self, connection: amqp.Connection | None) -> None:
        """Use ``connection`` from now on (``None``: it was lost); forget past declarations."""
        self._connection = connection
        self._channel = None
        self._declared = {}

    def is_declared(self, key: Key) -> bool:
        """Whether ``key`` was declared on the current connection (the publish fast path)."""
        future = self._declared.get(key)
        return (
            future is not None
            and future.done()
            and not future.cancelled()
            and future.exception() is None
        )

    def forget(self, *keys: Key) -> None:
        """Declare these again next time (e.g. the broker says they no longer exist)."""
        for key in keys:
            self._declared.pop(key, None)

    async def queue(self, name: str, arguments: dict[str, Any] | None = None) -> None:
        """Declare a durable queue (``arguments`` default to the bus's queue type)."""
        key = ("queue", name)
        if self.is_declared(key):
            return  # the usual case: every send asks
        args = self.queue_args if arguments is None else arguments
        await self._ensure(
            key,
            f"queue {name!r}",
            lambda ch: ch.queue_declare(name, durable=True, arguments=args),
        )

    async def exchange(self, name: str) -> None:
        """Declare a durable fanout exchange."""
        key = ("exchange", name)
        if self.is_declared(key):
            return  # the usual case: every publish asks
        await self._ensure(
            key,
            f"exchange {name!r}",
            lambda ch: ch.exchange_declare(name, exchange_type="fanout", durable=True),
        )

    async def binding(self, queue: str, exchange: str) -> None:
        """Bind ``queue`` to the fanout ``exchange`` (both must have been declared)."""
        key = ("binding", queue, exchange)
        if self.is_declared(key):
            return
        await self._ensure(
            key,
            f"binding of queue {queue!r} to exchange {exchange!r}",
            lambda ch: ch.queue_bind(queue, exchange, routing_key=""),
        )

    async def _ensure(
        self, key: Key, what: str, declare: Callable[[amqp.Channel], Awaitable[Any]]
    ) -> None:
        future = self._declared.get(key)
        if future is None:
            # One declaration per key, however many senders want it at once; each waiter is
            # shielded so one caller timing out does not cancel it for the others.
            future = asyncio.ensure_future(self._declare(what, declare))
            self._declared[key] = future
            declared = self._declared
            future.add_done_callback(lambda f: _forget_failed(declared, key, f))
        await asyncio.shield(future)

    async def _declare(self, what: str, declare: Callable[[amqp.Channel], Awaitable[Any]]) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                channel = await self._get_channel()
                await declare(channel)
        except _REFUSALS as exc:
            raise TopologyError(f"RabbitMQ refused to declare {what}: {exc}") from exc
        log.debug("declared %s", what)

    async def _get_channel(self) -> amqp.Channel:
        async with self._channel_lock:
            channel = self._channel
            if channel is None or channel.is_closed:
                connection = self._connection
                if connection is None or connection.is_closed:
                    raise amqp.ConnectionClosedError("not connected")
                channel = self._channel = await connection.channel()
            return channel


def _forget_failed(
    declared: dict[Key, asyncio.Future[None]], key: Key, future: asyncio.Future[None]
) -> None:
    # Reading the exception also keeps asyncio from logging "exception never retrieved".
    failed = future.cancelled() or future.exception() is not None
    if failed and declared.get(key) is future:
        del declared[key]
