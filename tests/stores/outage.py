"""A transport with a switchable outage: ``outage+memory://...`` or ``outage+amqp://...``.

It wraps the real transport of the inner URL and, while ``down`` is set, refuses every send and
publish the way an unreachable broker does (``PublishTimeoutError``). Consuming is left alone,
but every delivery is counted by message id (``delivered``), so tests can see duplicates the
inbox hides from handlers. Not a mock: messages really go through the inner transport whenever
the outage is over.
"""

from __future__ import annotations

from collections import Counter

from busline.envelope import Envelope
from busline.errors import PublishTimeoutError
from busline.transport import (
    ConsumerSpec,
    Delivery,
    DeliveryCallback,
    Subscription,
    Transport,
    TransportSettings,
    open_transport,
    register_transport,
)

PREFIX = "outage+"


class OutageTransport:
    """Forwards to the inner transport, except sends while :attr:`down` is true."""

    def __init__(self, url: str, settings: TransportSettings) -> None:
        self.inner: Transport = open_transport(url.removeprefix(PREFIX), settings)
        self.system = self.inner.system
        self.down = False
        self.refused = 0
        self.delivered: Counter[str] = Counter()

    @property
    def connected(self) -> bool:
        # An outage here refuses sends on a live connection (as timeouts would), so that the
        # refusals are counted: the connection itself stays up.
        return self.inner.connected

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    def _check(self) -> None:
        if self.down:
            self.refused += 1
            raise PublishTimeoutError("broker unreachable (simulated outage)")

    async def send(self, queue: str, envelope: Envelope) -> None:
        self._check()
        await self.inner.send(queue, envelope)

    async def publish(self, exchange: str, envelope: Envelope) -> None:
        self._check()
        await self.inner.publish(exchange, envelope)

    async def subscribe(self, spec: ConsumerSpec, on_delivery: DeliveryCallback) -> Subscription:
        def count(delivery: Delivery) -> None:
            self.delivered[delivery.envelope.message_id] += 1
            on_delivery(delivery)

        return await self.inner.subscribe(spec, count)


for _scheme in ("memory", "amqp"):
    register_transport(PREFIX + _scheme, OutageTransport)
