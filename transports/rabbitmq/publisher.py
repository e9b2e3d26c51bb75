"""Publishing with publisher confirms: a publish returns only once the broker has the message.

All publishes share one confirm-mode channel per connection and are pipelined on it: each one
writes its frames at once (the delivery tag is taken as they are written, so tags match the
broker's count) and then waits for its own confirm; a thousand concurrent sends cost a thousand
frames and roughly one round trip, not a thousand round trips.

If the channel or connection dies before the confirm arrives, the client fails every pending
confirm at once; the broker may or may not have the message, so the publish is repeated on the
next channel (a duplicate is acceptable, a loss is not) until ``send_timeout`` runs out, when
:class:`~busline.errors.PublishTimeoutError` is raised. A publish never reports success without a
broker ack.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable

from pamqp.commands import Basic

from busline.errors import PublishError, PublishTimeoutError, UnroutableError

from . import amqp
from .acks import CHANNEL_GONE
from .connection import ConnectionManager, TransportClosedError
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
        self._channel: amqp.Channel | None = None
        self._lock = asyncio.Lock()

    async def attach(self, connection: amqp.Connection) -> None:
        """Open the confirm channel of a new connection."""
        self._channel = await connection.channel(confirms=True)

    def detach(self) -> None:
        """The connection was lost: forget its channel."""
        self._channel = None

    async def close(self) -> None:
        """Close the channel (the connection closes separately)."""
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            try:
                await channel.close(grace=5)
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

        ``properties`` should carry a message id: a returned message is matched to its publish
        by it. Pass a :class:`~.properties.FastProperties` for speed. ``ensure`` declares what
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
            channel: amqp.Channel | None = None
            try:
                async with asyncio.timeout_at(deadline):
                    channel = self._channel
                    if channel is None or channel.is_closed:
                        channel = await self._open_channel(deadline)
                    if ensure is not None:
                        await ensure()
                    await channel.publish(body, exchange, routing_key, properties, mandatory)
                return
            except amqp.UnroutableError as exc:
                if on_unroutable is not None:
                    on_unroutable()
                raise UnroutableError(
                    f"RabbitMQ returned the message sent to {_target(exchange, routing_key)}: "
                    f"no queue is bound to receive it ({exc.reply_text})"
                ) from None
            except amqp.NackedError:
                raise PublishError(
                    f"RabbitMQ refused (nacked) the message sent to "
                    f"{_target(exchange, routing_key)}"
                ) from None
            except TopologyError:
                raise
            except TimeoutError:
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
            except CHANNEL_GONE as exc:
                reason: BaseException = exc
            attempt += 1
            if channel is not None and self._channel is channel:
                self._channel = None
            if isinstance(reason, amqp.ChannelClosedError) and reason.reply_code:
                if isinstance(reason, amqp.NotFoundError) and on_not_found is not None:
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

    async def _open_channel(self, deadline: float) -> amqp.Channel:
        async with self._lock:
            while True:
                channel = self._channel
                if channel is not None and not channel.is_closed:
                    return channel
                connection = await self._connections.get(deadline)
                try:
                    channel = self._channel = await connection.channel(confirms=True)
                except CHANNEL_GONE as exc:
                    log.debug("opening a publish channel failed: %r", exc)
                    await asyncio.sleep(0.05)
                    continue
                return channel


def _target(exchange: str, routing_key: str) -> str:
    if exchange:
        return f"exchange {exchange!r}"
    return f"queue {routing_key!r}"
