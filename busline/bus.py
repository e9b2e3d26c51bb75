"""The composition root: declare handlers, start and stop, send commands and publish events.

Only this module knows every part. It builds them at start, each with the narrow settings and
services it uses: the :class:`~busline.outgoing.MessageFactory` (building messages), the
:class:`~busline.publishing.Publisher` (the publish chain to the transport), the
:class:`~busline.storage.StoreRuntime` (store, outbox relay), the consume chain of each
:class:`~busline.consumer.Consumer`, and the telemetry. docs/architecture.md walks the path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from busline.assembly import build_consumer, retry_window, start_telemetry, tracing_middleware
from busline.bus_arguments import check_arguments, handler_options
from busline.clock import Clock, SystemClock
from busline.consumer import Consumer
from busline.context import HandlerServices
from busline.declarations import HandlerDeclarations, check_links
from busline.emitting import Emitting
from busline.errors import BusNotRunningError, RegistrationError
from busline.hooks import HookDeclarations, Hooks
from busline.lifecycle import RUNNING, Lifecycle, run_until_signalled
from busline.messages import Message
from busline.middleware import Middleware, outcomes_of, overrides
from busline.outgoing import MessageFactory
from busline.publishing import Publisher
from busline.registry import Registry, ServiceLinks
from busline.retries import RetryPolicy
from busline.saga import Saga
from busline.saga_step import SagaRunner
from busline.storage import StoreRuntime
from busline.stores import NoStoreError, StoreSettings
from busline.tracing.settings import TracingSettings
from busline.transport import QueueType, Transport, TransportSettings, open_transport
from busline.urls import mask_url

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from busline.tracing import Telemetry

log = logging.getLogger("busline")

DEFAULT_PREFETCH = 32
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024


class Bus(HandlerDeclarations, HookDeclarations, Emitting):
    """A service's connection to the message bus.

    Args:
        service: This service's name: the ``app_id`` of what it sends, the prefix of its
            subscriber queues.
        url: Picks the transport: ``memory://`` (optionally ``memory://name``) or
            ``amqp://user:pass@host:5672/vhost`` / ``amqps://...``. Several RabbitMQ nodes of
            a cluster: a list, or the URLs comma-separated; the bus connects to the first that
            answers and moves to the next when it fails.
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
        tracing: OpenTelemetry spans and metrics (docs/tracing.md): a
            :class:`~busline.tracing.TracingSettings`, or ``True``/``False`` to force it on or
            off. ``None`` (default): on when an SDK provider is installed globally or passed
            below, checked at start; off, it costs nothing.
        trace_commands_as: ``"child"`` (default): a command's process span continues the
            sender's trace; ``"link"``: it starts a new trace linked to the send span. (The
            same as ``TracingSettings(commands_as=...)``.)
        trace_events_as: The same for events; ``"link"`` by default (a fact has many readers).
            Handlers override both with ``trace_as=``.
        tracer_provider: Use this OpenTelemetry tracer provider instead of the global one.
        meter_provider: Use this OpenTelemetry meter provider instead of the global one.
        sends: The commands this service sends outside handlers (``bus.send``,
            ``bus.transaction()``), for ``busline map``; like a handler's ``sends=``.
        publishes: The same for the events it publishes outside handlers.
    """

    def __init__(
        self,
        service: str,
        url: str | Sequence[str] = "memory://",
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
        tracing: bool | TracingSettings | None = None,
        trace_commands_as: Literal["child", "link"] = "child",
        trace_events_as: Literal["child", "link"] = "link",
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        sends: Sequence[type[Message]] = (),
        publishes: Sequence[type[Message]] = (),
    ) -> None:
        check_arguments(service, prefetch, queue_type, store, store_settings)
        self.service = service
        #: The transport URL; several broker nodes are joined by commas.
        self.url = url if isinstance(url, str) else ",".join(url)
        self.prefetch = prefetch
        self.max_message_size = max_message_size
        self.shutdown_timeout = shutdown_timeout
        self.clock: Clock = clock or SystemClock()
        self.middleware: list[Middleware] = list(middleware)
        self.retry = retry or RetryPolicy()
        self.tracing = TracingSettings.of(
            tracing, trace_commands_as, trace_events_as, tracer_provider, meter_provider
        )
        self.settings = TransportSettings(
            service=service,
            queue_type=queue_type,
            error_queue=error_queue,
            send_timeout=send_timeout,
            clock=self.clock,
            options=dict(transport_options or {}),
        )
        self.registry = Registry(service)
        sent, published = check_links(sends, publishes)
        #: What the service itself sends and publishes, outside its handlers (declared links).
        self.links = ServiceLinks(service, sent, published)
        #: The per-handler options the decorators accept: busline's own and the middleware's.
        self.handler_options = handler_options(self.middleware)
        self._lifecycle = Lifecycle(service)
        self._hooks = Hooks()
        self._factory = MessageFactory(self._lifecycle, self.clock, max_message_size)
        self._publisher = Publisher(service)
        #: The store at run time (store, outbox relay) when ``store=`` is given, else ``None``.
        self.storage: StoreRuntime | None = (
            StoreRuntime(
                store, store_settings or StoreSettings(), service, self.clock, self._publisher
            )
            if store
            else None
        )
        self.transport: Transport | None = None
        #: The bus's tracing and metrics once started, ``None`` when tracing is off.
        self.telemetry: Telemetry | None = None
        self._consumers: list[Consumer] = []
        #: The sagas this service runs (:meth:`add_saga`).
        self.sagas: list[Saga] = []
        self._saga_runners: list[SagaRunner] = []

    @property
    def state(self) -> str:
        """``new``, ``starting``, ``running``, ``stopping`` or ``stopped``."""
        return self._lifecycle.state

    def __repr__(self) -> str:
        return f"<Bus service={self.service!r} url={mask_url(self.url)!r} {self.state}>"

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, open the store, run the :meth:`on_start` hooks, then start every
        consumer."""
        if self._lifecycle.state != "new":
            raise BusNotRunningError(f"a bus starts once; this one is {self.state}")
        self._lifecycle.state = "starting"
        self.transport = open_transport(self.url, self.settings)
        try:
            await self.transport.start()
            tracing = self._start_telemetry(self.transport)
            layers = [*tracing, *self.middleware]
            self._factory.set_hooks([mw.on_create for mw in layers if overrides(mw, "on_create")])
            self._publisher.connect(self.transport, layers)
            if self.storage is not None:
                await self.storage.start(retry_window(self.retry, self.registry.specs))
            # Before any consumer: no handler sees a message before the service is set up.
            await self._hooks.run_start(self.service)
            services = HandlerServices(
                self.service, self._factory, self.storage is not None, outcomes_of(layers)
            )
            for spec in self.registry.specs:
                consumer = build_consumer(
                    spec,
                    tracing,
                    services,
                    publisher=self._publisher,
                    storage=self.storage,
                    retry=self.retry,
                    middleware=self.middleware,
                    prefetch=spec.prefetch or self.prefetch,
                    max_message_size=self.max_message_size,
                    clock=self.clock,
                )
                await consumer.start(self.transport)
                self._consumers.append(consumer)
        except BaseException:
            await self._shutdown()
            raise
        self._lifecycle.state = RUNNING
        log.info("bus %s started on %s", self.service, mask_url(self.url))

    def _start_telemetry(self, transport: Transport) -> list[Middleware]:
        """The tracing middleware when tracing is on; nothing when off."""
        self.telemetry = start_telemetry(
            self.tracing,
            service=self.service,
            transport=transport,
            url=self.url,
            error_queue=self.settings.error_queue,
            handlers=self.registry.specs,
        )
        if self.telemetry is None:
            return []
        if self.storage is not None:
            self.storage.report_backlog = self.telemetry.set_outbox_backlog
        for runner in self._saga_runners:
            runner.telemetry = self.telemetry
        return [tracing_middleware(self.telemetry)]

    async def stop(self) -> None:
        """Stop consuming, finish and settle in-flight messages, run the :meth:`on_stop` hooks,
        then disconnect."""
        if self._lifecycle.state in ("new", "stopped"):
            self._lifecycle.state = "stopped"
            return
        self._lifecycle.state = "stopping"
        await self._shutdown()
        log.info("bus %s stopped", self.service)

    async def _shutdown(self) -> None:
        try:
            await asyncio.gather(*(c.stop(self.shutdown_timeout) for c in self._consumers))
        finally:
            self._consumers = []
            try:
                # Handlers are done; the store and the connection are still open for the hooks.
                await self._hooks.run_stop(self.service)  # logs, never raises
            finally:
                await self._close_connections()

    async def _close_connections(self) -> None:
        if self.storage is not None:
            await self.storage.stop()  # logs, never raises
        self._publisher.disconnect()
        if self.transport is not None:
            await self.transport.close()
        self._lifecycle.state = "stopped"

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
        await run_until_signalled(self, f"bus {self.service}")

    def add_saga(self, saga: Saga) -> None:
        """Run ``saga`` in this service: its steps consume the messages it starts on and
        handles (a command it handles is owned by it, like a command handler's). A saga keeps
        its instances in the bus's store, so the bus needs ``store=``."""
        if self.storage is None:
            raise NoStoreError(
                f"saga {saga.name!r} keeps its instances in a store: Bus({self.service!r}, ..., "
                f"store='sqlite:///app.db' or 'postgresql://...')"
            )
        if self.state != "new":
            raise RegistrationError("add sagas before the bus starts")
        if any(existing.name == saga.name for existing in self.sagas):
            raise RegistrationError(f"saga {saga.name!r} is already added to this bus")
        if not saga.handlers:
            raise RegistrationError(f"saga {saga.name!r} handles nothing: declare its steps first")
        runner = SagaRunner(saga, self._factory, self.clock, self.storage.settings)
        for spec in runner.specs(self.service):
            self.registry.add(spec)
        self.sagas.append(saga)
        self._saga_runners.append(runner)
