"""A scenario for testing one saga: messages in, virtual time forward, and what came out.

It runs the saga on a real bus (the in-process transport and a SQLite file, no broker) with a
:class:`~busline.testing.VirtualClock`, so a test reads like the process it checks::

    async with SagaScenario(fulfilment) as scenario:
        step = await scenario.handle(OrderPlaced(order_id="o-1", amount=9.5))
        assert step.sent == [ReserveStock(order_id="o-1"), RetrievePayment(...)]
        assert scenario.pending_timeouts() == [("shop.PaymentOverdue", 900.0)]
        step = await scenario.advance(900)
        assert step.sent == [RefundPayment(order_id="o-1"), ReleaseStock(order_id="o-1")]
        assert await scenario.state("o-1") is None  # compensated and ended
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec

from busline.bus import Bus
from busline.messages import Message, MessageKind
from busline.middleware import Middleware, PublishNext
from busline.outgoing import OutgoingMessage
from busline.saga import Saga
from busline.saga_context import HEADER_SAGA_TIMEOUT
from busline.stores import StoreSettings
from busline.testing.clock import VirtualClock
from busline.testing.join import join, memory_url


@dataclass(slots=True)
class ScenarioStep:
    """What the saga did in reaction to one message, or to time passing."""

    #: Commands sent, in order (compensations included).
    sent: list[Message] = field(default_factory=list)
    #: Events published, in order.
    published: list[Message] = field(default_factory=list)


class _Recorder(Middleware):
    """Keeps every message the bus sends, as the object it was built from."""

    def __init__(self) -> None:
        self.types: dict[str, type[Message]] = {}
        self.step = ScenarioStep()

    def on_create(self, out: OutgoingMessage) -> None:
        if out.message is not None:
            self.types[out.destination] = type(out.message)

    async def on_publish(self, out: OutgoingMessage, call_next: PublishNext) -> None:
        if HEADER_SAGA_TIMEOUT in out.envelope.headers:  # a timeout firing, not a step's send
            await call_next(out)
            return
        message = out.message
        if message is None:  # a recorded compensation: only its envelope was kept
            message = msgspec.json.decode(out.envelope.body, type=self.types[out.destination])
        kept = self.step.sent if out.kind is MessageKind.COMMAND else self.step.published
        kept.append(message)
        await call_next(out)


class SagaScenario:
    """One saga on its own bus, driven by the test (``async with``).

    Args:
        saga: The saga under test.
        service: The bus's service name.
        store: The store URL; by default a SQLite file in a temporary folder (pass one to let
            two scenarios share instances, e.g. an old and a new version of the state).
        store_settings: The store's settings (e.g. ``saga_retention``).
    """

    def __init__(
        self,
        saga: Saga,
        *,
        service: str = "saga-test",
        store: str | None = None,
        store_settings: StoreSettings | None = None,
    ) -> None:
        self.saga = saga
        self.clock = VirtualClock()
        self._folder = tempfile.TemporaryDirectory(prefix="busline-saga-")
        self._recorder = _Recorder()
        self.bus = Bus(
            service,
            memory_url("saga"),
            store=store or f"sqlite:///{Path(self._folder.name) / 'saga.db'}",
            store_settings=store_settings or StoreSettings(relay_interval=3600.0),
            clock=self.clock,
            middleware=[self._recorder],
            # The scenario plays the saga's counterparts: it sends and publishes what the saga
            # handles (declared, so that nothing warns of an undeclared link).
            sends=[h.message_type for h in saga.handlers.values() if h.kind is MessageKind.COMMAND],
            publishes=[
                h.message_type for h in saga.handlers.values() if h.kind is MessageKind.EVENT
            ],
        )
        self.bus.add_saga(saga)
        self._scheduled: list[tuple[str, float]] = []

    async def __aenter__(self) -> SagaScenario:
        await self.bus.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.bus.stop()
        finally:
            self._folder.cleanup()

    async def handle(self, message: Message, **options: Any) -> ScenarioStep:
        """Deliver ``message`` (sent if a command, published if an event) and wait until the
        saga and everything it caused in this bus are done; return what it sent."""
        self._recorder.step = ScenarioStep()
        if message.__message_kind__ is MessageKind.COMMAND:
            await self.bus.send(message, **options)
        else:
            await self.bus.publish(message, **options)
        return await self._settle()

    async def advance(self, seconds: float) -> ScenarioStep:
        """Let ``seconds`` of virtual time pass, fire the timeouts that fall due, and return
        what the saga did about them."""
        self._recorder.step = ScenarioStep()
        self.clock.advance(seconds)
        return await self._settle()

    async def _settle(self) -> ScenarioStep:
        storage = self.bus.storage
        assert storage is not None
        while True:
            await join(self.bus)
            # The relay sends what fell due (timeouts); run it here rather than waiting for
            # its next poll, until nothing more is due.
            if await storage.relay.run_once() == 0:
                break
        self._scheduled = [
            (s.message_type, s.due_at - self.clock.now())
            for s in await storage.store.scheduled(f"{self.saga.name}/")
        ]
        return self._recorder.step

    def pending_timeouts(self) -> list[tuple[str, float]]:
        """The timeouts waiting, as ``(message type, seconds until due)``, soonest first."""
        return list(self._scheduled)

    async def state(self, key: str) -> Any:
        """The instance's state, ``None`` when there is none (never started, or ended)."""
        storage = self.bus.storage
        assert storage is not None
        async with storage.store.transaction() as tx:  # only reads: its commit changes nothing
            record = await tx.load_saga(self.saga.name, key)
        if record is None or record.status == "completed":
            return None
        return msgspec.json.decode(record.state, type=self.saga.state_type)
