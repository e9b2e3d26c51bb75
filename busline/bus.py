"""The composition root: declare handlers, start and stop, send commands and publish events."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from busline.clock import Clock, SystemClock
from busline.context import OutgoingMessage
from busline.declarations import HandlerDeclarations
from busline.dispatch import Endpoint
from busline.envelope import Envelope
from busline.errors import BusNotRunningError
from busline.messages import Message, MessageKind
from busline.middleware import Middleware, compose_consume, compose_publish
from busline.middleware.store import StoreMiddleware
from busline.outbox import Outbox
from busline.outgoing import build_outgoing, check_kind
from busline.registry import Registry, handler_call
from busline.retries import RetryMiddleware, RetryPolicy
from busline.stores import NoStoreError, StoreSettings
from busline.transaction import Transaction, open_transaction
from busline.transport import QueueType, Transport, TransportSettings, open_transport
from busline.urls import mask_url

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from busline.tracing import Telemetry

log = logging.getLogger("busline")

DEFAULT_PREFETCH = 32
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024


class Bus(HandlerDeclarations):
    """A service's connection to the message bus.

    Args:
        service: This service's name: the ``app_id`` of what it sends, the prefix of its
            subscriber queues.
        url: Picks the transport: ``memory://`` (optionally ``memory://name``) or
            ``amqp://user:pass@host:5672/vhost`` / ``amqps://...``.
        prefetch: Default per-handler concurrency: messages in flight per handler.
        max_message_size: Largest body accepted, in bytes, both when sending and receiving.
        queue_type: ``"quorum"`` (replicated, the default) or ``"classic"`` queues.
        send_timeout: Seconds a send may wait for the broker (connection and confirm).
        shutdown_timeout: Seconds ``stop()`` waits for in-flight handlers.
        error_queue: Where unprocessable messages are parked with their reason.
        retry: The default :class:`~busline.retries.RetryPolicy` (handlers may override it
            with ``retry=``); by default 3 immediate retries, then after 1 s, 10 s and 60 s.
        middleware: Extra :class:`~busline.middleware.Middleware`, outermost first.
        clock: Time source for delays; tests pass :class:`busline.testing.VirtualClock`.
        transport_options: Transport-specific options (e.g. ``ssl_context`` for amqps).
        store: Where the outbox and inbox live (docs/outbox.md): ``sqlite:///path.db`` or
            ``postgresql://user:pass@host/db``. With a store, each message is handled in one
            database transaction (``ctx.db``) with its inbox record and outgoing messages, and
            ``bus.transaction()`` is available. ``None`` (default): no store.
        store_settings: Leases, relay pacing and retention of the store
            (:class:`~busline.stores.StoreSettings`).
        tracing: OpenTelemetry spans and metrics (docs/tracing.md). ``None`` (default): on when
            an SDK provider is installed globally or passed below, checked at start; off, it
            costs nothing.
        trace_commands_as: ``"child"`` (default): a command's process span continues the
            sender's trace; ``"link"``: it starts a new trace linked to the send span.
        trace_events_as: The same for events; ``"link"`` by default (a fact has many readers).
            Handlers override both with ``trace_as=``.
        tracer_provider: Use this OpenTelemetry tracer provider instead of the global one.
        meter_provider: Use this OpenTelemetry meter provider instead of the global one.
    """

    def __init__(
        self,
        service: str,
        url: str = "memory://",
        *,
        prefetch: int = DEFAULT_PREFETCH,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        queue_type: QueueType = "quorum",
        send_timeout: float = 30.0,
        shutdown_timeout: float = 30.0,
        error_queue: str = "busline.error",
        middleware: Sequence[Middleware] = (),
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        transport_options: Mapping[str, Any] | None = None,
        store: str | None = None,
        store_settings: StoreSettings | None = None,
        tracing: bool | None = None,
        trace_commands_as: Literal["child", "link"] = "child",
        trace_events_as: Literal["child", "link"] = "link",
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        if not service or not service.strip():
            raise ValueError("service must be a non-empty name")
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        if queue_type not in ("quorum", "classic"):
            raise ValueError("queue_type must be 'quorum' or 'classic'")
        self.service = service
        self.url = url
        self.prefetch = prefetch
        self.max_message_size = max_message_size
        self.shutdown_timeout = shutdown_timeout
        self.clock: Clock = clock or SystemClock()
        self.middleware: list[Middleware] = list(middleware)
        self.retry = retry or RetryPolicy()
        self.settings = TransportSettings(
            service=service,
            queue_type=queue_type,
            error_queue=error_queue,
            send_timeout=send_timeout,
            clock=self.clock,
            options=dict(transport_options or {}),
        )
        self.registry = Registry(service)
        self.transport: Transport | None = None
        if store_settings is not None and store is None:
            raise ValueError("store_settings= needs a store= URL")
        #: The store, its outbox and relay when ``store=`` is given; ``None`` without a store.
        self.outbox: Outbox | None = (
            Outbox(self, store, store_settings or StoreSettings()) if store else None
        )
        self._endpoints: list[Endpoint] = []
        self._publish_chain = compose_publish((), self._transport_dispatch)
        #: The transport, when sends can go to it without a publish middleware chain.
        self._direct: Transport | None = None
        self._state = "new"
        for mode in (trace_commands_as, trace_events_as):
            if mode not in ("child", "link"):
                raise ValueError(f"trace_*_as must be 'child' or 'link', got {mode!r}")
        self.tracing = tracing
        self.trace_commands_as: Literal["child", "link"] = trace_commands_as
        self.trace_events_as: Literal["child", "link"] = trace_events_as
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        #: The bus's tracing and metrics once started, ``None`` when tracing is off.
        self.telemetry: Telemetry | None = None
        #: Called with every message :meth:`prepare` builds, before anything sends it (tracing
        #: captures the context the message was created in: it may leave much later).
        self.create_hooks: list[Callable[[OutgoingMessage], None]] = []

    @property
    def storage(self) -> Outbox | None:
        """The store's runtime (store, outbox relay, marker) when ``store=`` is given."""
        return self.outbox

    def __repr__(self) -> str:
        return f"<Bus service={self.service!r} url={mask_url(self.url)!r} {self._state}>"

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, declare topology and start every consumer."""
        if self._state != "new":
            raise BusNotRunningError(f"a bus starts once; this one is {self._state}")
        self._state = "starting"
        self.transport = open_transport(self.url, self.settings)
        try:
            await self.transport.start()
            stack = [*self._builtin_middleware(), *self.middleware]
            self._publish_chain = compose_publish(stack, self._transport_dispatch)
            if self._publish_chain == self._transport_dispatch:
                # No publish middleware: skip a coroutine layer on every send.
                self._direct = self.transport
            if self.outbox is not None:
                await self.outbox.start()
            for spec in self.registry.specs:
                chain = compose_consume(stack, handler_call(spec))
                endpoint = Endpoint(self, spec, chain, spec.prefetch or self.prefetch)
                await endpoint.start(self.transport)
                self._endpoints.append(endpoint)
        except BaseException:
            await self._shutdown()
            raise
        self._state = "running"
        log.info("bus %s started on %s", self.service, mask_url(self.url))

    def _builtin_middleware(self) -> list[Middleware]:
        """busline's own middleware, outermost first: tracing, retries, store (outbox/inbox).

        The user's middleware goes inside these, closest to the handler.
        """
        stack: list[Middleware] = [*self._tracing_middleware(), RetryMiddleware(self.retry)]
        if self.outbox is not None:
            stack.append(StoreMiddleware(self.outbox))
        return stack

    def _tracing_middleware(self) -> list[Middleware]:
        """The tracing middleware and creation hook when tracing is on; nothing when off."""
        # Imported here: the OpenTelemetry API costs import time that an untraced bus never pays.
        from busline.tracing import Telemetry, TracingMiddleware

        self.telemetry = Telemetry.for_bus(self)
        if self.telemetry is None:
            return []
        tracing = TracingMiddleware(self.telemetry)
        self.create_hooks.append(tracing.capture_creation_context)
        return [tracing]

    async def stop(self) -> None:
        """Stop consuming, finish and settle in-flight messages, then disconnect."""
        if self._state in ("new", "stopped"):
            self._state = "stopped"
            return
        self._state = "stopping"
        await self._shutdown()
        log.info("bus %s stopped", self.service)

    async def _shutdown(self) -> None:
        try:
            await asyncio.gather(*(ep.stop(self.shutdown_timeout) for ep in self._endpoints))
        finally:
            self._endpoints = []
            self._direct = None
            if self.outbox is not None:
                await self.outbox.stop()  # logs, never raises
            if self.transport is not None:
                await self.transport.close()
            self._state = "stopped"

    async def __aenter__(self) -> Bus:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def run(self) -> None:
        """Start, run until SIGINT or SIGTERM (or cancellation), then shut down gracefully."""
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stopping.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
                pass
        try:
            async with self:
                await stopping.wait()
                log.info("bus %s: signal received, shutting down", self.service)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    # -- sending -------------------------------------------------------------------------------

    async def send(
        self,
        command: Message,
        *,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Send a command to its queue; return its message id once the broker confirmed it."""
        out = self.prepare(
            command, MessageKind.COMMAND, None, correlation_id, idempotency_key, headers
        )
        if self._direct is not None:
            await self._direct.send(out.destination, out.envelope)
        else:
            await self._publish_chain(out)
        return out.envelope.message_id

    async def publish(
        self,
        event: Message,
        *,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Publish an event to its subscribers; return its message id once confirmed."""
        out = self.prepare(event, MessageKind.EVENT, None, correlation_id, idempotency_key, headers)
        if self._direct is not None:
            await self._direct.publish(out.destination, out.envelope)
        else:
            await self._publish_chain(out)
        return out.envelope.message_id

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """Write data and send messages atomically, outside a handler (needs ``store=``)::

            async with bus.transaction() as tx:
                await tx.db.execute(...)  # aiosqlite or asyncpg connection, in the transaction
                await tx.send(PlaceOrder(...), idempotency_key=...)

        Messages are written to the outbox in the transaction and sent after it commits (by the
        relay if the broker is unreachable); if the block raises, nothing is kept or sent.
        """
        if self.outbox is None:
            raise NoStoreError(
                f"bus.transaction() needs a store: Bus({self.service!r}, ..., "
                f"store='sqlite:///app.db' or 'postgresql://...')"
            )
        return open_transaction(self, self.outbox)

    def prepare(
        self,
        message: Message,
        kind: MessageKind,
        parent: Envelope | None,
        correlation_id: str | None,
        idempotency_key: str | None,
        headers: Mapping[str, Any] | None,
    ) -> OutgoingMessage:
        """Check ``message`` is of ``kind`` and build its envelope, inheriting from ``parent``."""
        check_kind(message, kind)
        if self._state not in ("running", "starting", "stopping"):
            raise BusNotRunningError(
                f"bus {self.service!r} is {self._state}: use 'async with bus:' or await "
                f"bus.start() before sending"
            )
        out = build_outgoing(
            message,
            kind,
            parent,
            correlation_id,
            idempotency_key,
            headers,
            service=self.service,
            now=self.clock.now(),
            max_size=self.max_message_size,
        )
        for hook in self.create_hooks:
            hook(out)
        return out

    async def dispatch_outgoing(self, outgoing: Sequence[OutgoingMessage]) -> None:
        """Send messages collected by a handler, concurrently; return once all are confirmed."""
        if len(outgoing) == 1:
            await self._publish_chain(outgoing[0])
            return
        results = await asyncio.gather(
            *(self._publish_chain(out) for out in outgoing), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _transport_dispatch(self, out: OutgoingMessage) -> None:
        transport = self.transport
        if transport is None:
            raise BusNotRunningError(f"bus {self.service!r} has no transport")
        if out.kind is MessageKind.COMMAND:
            await transport.send(out.destination, out.envelope)
        else:
            await transport.publish(out.destination, out.envelope)
