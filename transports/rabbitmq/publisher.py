"""Publishing with publisher confirms: a publish returns only once the broker has the message.

All publishes share one confirm-mode channel per connection and are pipelined on it: each one
goes through aiormq's ``basic_publish`` (which queues the frames and hands out the delivery tag
under the channel's lock, so tags match the order frames are written) and then waits for its own
confirm; a thousand concurrent sends cost a thousand frames and roughly one round trip, not a
thousand round trips.

If the channel or connection dies before the confirm arrives, the broker may or may not have the
message; the publish is then repeated on the next channel (a duplicate is acceptable, a loss is
not) until ``send_timeout`` runs out, when :class:`~busline.errors.PublishTimeoutError` is raised.
A publish never reports success without a broker ack.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import cast

import aiormq
from aiormq import Channel
from aiormq.abc import AbstractConnection
from pamqp.commands import Basic

from busline.errors import PublishError, PublishTimeoutError, UnroutableError

from .acks import CHANNEL_GONE
from .connection import CHANNEL_FRAME_BUFFER, ConnectionManager, TransportClosedError
from .topology import TopologyError

log = logging.getLogger("busline.rabbitmq")

Ensure = Callable[[], Awaitable[None]]

#: Channel-level failures (not the connection) tolerated per publish before giving up: such a
#: failure closes the channel, e.g. publishing to an exchange deleted behind our back.
MAX_CHANNEL_FAILURES = 3


class Publisher:
    """Owns the confirm channel and the retry loop around every publish."""

    def __init__(self, connections: ConnectionManager, send_timeout: float) -> None:
        self._connections = connections
        self._timeout = send_timeout
        self._channel: _ConfirmChannel | None = None
        self._lock = asyncio.Lock()

    async def attach(self, connection: AbstractConnection) -> None:
        """Open the confirm channel of a new connection."""
        self._channel = _ConfirmChannel(await _confirm_channel(connection))

    def detach(self) -> None:
        """The connection was lost: forget its channel."""
        self._channel = None

    async def close(self) -> None:
        """Close the channel (the connection closes separately)."""
        confirm, self._channel = self._channel, None
        if confirm is not None and not confirm.channel.is_closed:
            try:
                await asyncio.wait_for(confirm.channel.close(), 5)
            except Exception as exc:
                log.debug("closing the publish channel: %r", exc)

    async def publish(
        self,
        *,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Basic.Properties,
        mandatory: bool,
        ensure: Ensure | None = None,
        on_unroutable: Callable[[], None] | None = None,
        on_not_found: Callable[[], None] | None = None,
    ) -> None:
        """Publish and wait for the broker's confirm.

        ``properties`` should carry a message id: aiormq matches a returned message to its
        publish by it (and invents one if it is missing). Pass a
        :class:`~.properties.FastProperties` for speed. ``ensure`` declares what
        the publish needs (cached, so usually free); it runs again after a reconnect.
        ``on_unroutable`` runs when the broker returns the message, before
        :class:`~busline.errors.UnroutableError` is raised; ``on_not_found`` when the exchange
        turned out not to exist (deleted behind our back), before the publish is retried.

        Raises:
            UnroutableError: mandatory and no queue took it.
            PublishError: the broker refused it (nack) or a declaration was refused.
            PublishTimeoutError: no confirm within ``send_timeout`` (broker unreachable).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        channel_failures = 0
        attempt = 0
        while True:
            confirm: _ConfirmChannel | None = None
            reason: BaseException
            try:
                async with asyncio.timeout_at(deadline) as scope:
                    confirm = self._channel
                    if confirm is None or confirm.channel.is_closed:
                        confirm = await self._open_channel(deadline)
                    if ensure is not None:
                        await ensure()
                    await confirm.publish(scope, body, exchange, routing_key, properties, mandatory)
                return
            except aiormq.PublishError as exc:
                if on_unroutable is not None:
                    on_unroutable()
                reply = exc.args[0] if exc.args else "NO_ROUTE"
                raise UnroutableError(
                    f"RabbitMQ returned the message sent to {_target(exchange, routing_key)}: "
                    f"no queue is bound to receive it ({reply})"
                ) from None
            except aiormq.DeliveryError:
                raise PublishError(
                    f"RabbitMQ refused (nacked) the message sent to "
                    f"{_target(exchange, routing_key)}"
                ) from None
            except TopologyError:
                raise
            except TimeoutError:
                if confirm is not None and confirm.channel.is_closed and loop.time() < deadline:
                    # The channel closed and cut the wait short, not the deadline.
                    reason = _close_reason(confirm.channel)
                else:
                    raise PublishTimeoutError(
                        f"no confirm from RabbitMQ at {self._connections.config.masked} within "
                        f"{self._timeout:g}s for the message sent to "
                        f"{_target(exchange, routing_key)}"
                    ) from None
            except TransportClosedError as exc:
                raise PublishError(str(exc)) from None
            except (TypeError, ValueError, struct.error) as exc:
                # The frame could not be encoded (e.g. a property over 255 bytes).
                raise PublishError(f"message cannot be encoded as AMQP: {exc}") from exc
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                # aiormq fails pending confirms with CancelledError when it closes a channel.
                reason = ConnectionError("channel closed")
            except CHANNEL_GONE as exc:
                reason = exc
            attempt += 1
            if confirm is not None and self._channel is confirm:
                self._channel = None
            if isinstance(reason, aiormq.AMQPChannelError):
                if isinstance(reason, aiormq.ChannelNotFoundEntity) and on_not_found is not None:
                    on_not_found()  # so that ensure() declares it again
                channel_failures += 1
                if channel_failures > MAX_CHANNEL_FAILURES:
                    raise PublishError(
                        f"RabbitMQ closed the channel publishing to "
                        f"{_target(exchange, routing_key)}: {reason}"
                    ) from reason
            log.debug(
                "publish to %s not confirmed (%r); retrying (attempt %d)",
                _target(exchange, routing_key),
                reason,
                attempt + 1,
            )
            # Short pause so a dying connection is not hammered before its loss is noticed.
            await asyncio.sleep(min(0.05 * attempt, 0.5))

    async def _open_channel(self, deadline: float) -> _ConfirmChannel:
        async with self._lock:
            while True:
                confirm = self._channel
                if confirm is not None and not confirm.channel.is_closed:
                    return confirm
                connection = await self._connections.get(deadline)
                try:
                    channel = await _confirm_channel(connection)
                except CHANNEL_GONE as exc:
                    log.debug("opening a publish channel failed: %r", exc)
                    await asyncio.sleep(0.05)
                    continue
                confirm = self._channel = _ConfirmChannel(channel)
                return confirm


class _ConfirmChannel:
    """The confirm-mode channel, and the deadlines of the publishes waiting on it.

    aiormq's write queue is small (ten frame batches) and a dead connection never drains it, so a
    publisher waiting there for room would sit until its deadline instead of retrying on the next
    channel. When the channel closes, every waiting publish's deadline (its ``asyncio.timeout``)
    is brought forward to now, and :meth:`Publisher.publish` tells that from a real timeout by
    the closed channel. One close observer per channel, not one per publish.
    """

    __slots__ = ("channel", "scopes")

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.scopes: set[asyncio.Timeout] = set()
        channel.closing.add_done_callback(self._closed)

    def _closed(self, _: object) -> None:
        now = asyncio.get_running_loop().time()
        for scope in self.scopes:
            if not scope.expired():
                scope.reschedule(now)

    async def publish(
        self,
        scope: asyncio.Timeout,
        body: bytes,
        exchange: str,
        routing_key: str,
        properties: Basic.Properties,
        mandatory: bool,
    ) -> None:
        """``basic_publish`` and wait for the confirm, while ``scope`` is active.

        ``wait=False``: waiting for the socket to drain buys nothing when the confirm is awaited
        anyway.
        """
        scopes = self.scopes
        scopes.add(scope)
        try:
            await self.channel.basic_publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                properties=properties,
                mandatory=mandatory,
                wait=False,
            )
        finally:
            scopes.discard(scope)


async def _confirm_channel(connection: AbstractConnection) -> Channel:
    channel = await connection.channel(
        publisher_confirms=True, on_return_raises=True, frame_buffer_size=CHANNEL_FRAME_BUFFER
    )
    return cast(Channel, channel)


def _close_reason(channel: Channel) -> BaseException:
    """Why ``channel`` closed (e.g. a channel error naming a missing exchange)."""
    closing = channel.closing  # the channel's own, finished future once it is closed
    if closing.done() and not closing.cancelled():
        exc = closing.exception()
        if exc is not None:
            return exc
    return ConnectionError("channel closed")


def _target(exchange: str, routing_key: str) -> str:
    if exchange:
        return f"exchange {exchange!r}"
    return f"queue {routing_key!r}"
