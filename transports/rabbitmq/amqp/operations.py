"""The synchronous methods of a channel, as coroutines returning the broker's reply.

Each is one :meth:`Channel.rpc` round trip; a refusal closes the channel and raises the
broker's reason as a :class:`~.errors.ChannelClosedError` subclass (``NotFoundError``,
``PreconditionFailedError``, ...).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pamqp.base import Frame
from pamqp.commands import Basic, Exchange, Queue

if TYPE_CHECKING:
    from .message import Delivery

Table = dict[str, Any]


class Operations:
    """Queues, exchanges, bindings, QoS, consumers and ``Basic.Get``."""

    consumers: dict[str, Callable[[Delivery], None]]

    async def rpc(self, method: Frame) -> Any:
        """Send a synchronous method and wait for its reply (implemented by the channel)."""
        raise NotImplementedError

    async def queue_declare(
        self,
        queue: str = "",
        *,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        passive: bool = False,
        arguments: Table | None = None,
    ) -> Queue.DeclareOk:
        """Declare a queue (``passive``: only check that it exists)."""
        method = Queue.Declare(
            queue=queue,
            passive=passive,
            durable=durable,
            exclusive=exclusive,
            auto_delete=auto_delete,
            arguments=arguments,
        )
        reply: Queue.DeclareOk = await self.rpc(method)
        return reply

    async def queue_bind(
        self, queue: str, exchange: str, routing_key: str = "", arguments: Table | None = None
    ) -> None:
        """Bind ``queue`` to ``exchange``."""
        await self.rpc(
            Queue.Bind(queue=queue, exchange=exchange, routing_key=routing_key, arguments=arguments)
        )

    async def queue_unbind(
        self, queue: str, exchange: str, routing_key: str = "", arguments: Table | None = None
    ) -> None:
        """Remove a binding."""
        await self.rpc(
            Queue.Unbind(
                queue=queue, exchange=exchange, routing_key=routing_key, arguments=arguments
            )
        )

    async def queue_purge(self, queue: str) -> int:
        """Delete every ready message of ``queue``; return how many."""
        reply: Queue.PurgeOk = await self.rpc(Queue.Purge(queue=queue))
        return int(reply.message_count or 0)

    async def queue_delete(
        self, queue: str, *, if_unused: bool = False, if_empty: bool = False
    ) -> int:
        """Delete ``queue``; return how many messages it held."""
        reply: Queue.DeleteOk = await self.rpc(
            Queue.Delete(queue=queue, if_unused=if_unused, if_empty=if_empty)
        )
        return int(reply.message_count or 0)

    async def exchange_declare(
        self,
        exchange: str,
        exchange_type: str = "direct",
        *,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        passive: bool = False,
        arguments: Table | None = None,
    ) -> None:
        """Declare an exchange."""
        await self.rpc(
            Exchange.Declare(
                exchange=exchange,
                exchange_type=exchange_type,
                passive=passive,
                durable=durable,
                auto_delete=auto_delete,
                internal=internal,
                arguments=arguments,
            )
        )

    async def exchange_delete(self, exchange: str, *, if_unused: bool = False) -> None:
        """Delete an exchange."""
        await self.rpc(Exchange.Delete(exchange=exchange, if_unused=if_unused))

    async def basic_qos(
        self, prefetch_count: int, prefetch_size: int = 0, global_: bool = False
    ) -> None:
        """How many unacknowledged deliveries the broker may send (per consumer)."""
        await self.rpc(
            Basic.Qos(prefetch_size=prefetch_size, prefetch_count=prefetch_count, global_=global_)
        )

    async def basic_consume(
        self,
        queue: str,
        callback: Callable[[Delivery], None],
        *,
        consumer_tag: str = "",
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: Table | None = None,
    ) -> str:
        """Start a consumer; ``callback`` gets every delivery, synchronously and in order.
        Returns the consumer tag (made up here if not given)."""
        tag = consumer_tag or f"amq.ctag.busline.{uuid.uuid4().hex}"
        # Registered before the request: deliveries may follow ConsumeOk in the same read.
        self.consumers[tag] = callback
        try:
            await self.rpc(
                Basic.Consume(
                    queue=queue,
                    consumer_tag=tag,
                    no_ack=no_ack,
                    exclusive=exclusive,
                    arguments=arguments,
                )
            )
        except BaseException:
            self.consumers.pop(tag, None)
            raise
        return tag

    async def basic_cancel(self, consumer_tag: str) -> None:
        """Stop a consumer (deliveries already sent still reach its callback)."""
        await self.rpc(Basic.Cancel(consumer_tag=consumer_tag))
        self.consumers.pop(consumer_tag, None)

    async def basic_get(self, queue: str, no_ack: bool = False) -> Delivery | None:
        """Take one message from ``queue`` (``None`` if it is empty)."""
        reply = await self.rpc(Basic.Get(queue=queue, no_ack=no_ack))
        if isinstance(reply, Basic.GetEmpty):
            return None
        message: Delivery = reply
        return message
