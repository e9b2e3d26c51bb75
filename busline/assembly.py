"""Assembling a bus's parts when it starts: each handler's consume chain, and the telemetry.

The composition root (:mod:`busline.bus`) decides what exists; this module knows the order the
layers go in. A consumer's chain, outermost first: tracing (when on), the consumer's verdict
(with the sending of the handler's messages once it succeeded), retries, the handler kind's own
stages (a saga's conflict retries), the store transaction, the user's middleware, the handler.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from busline.clock import Clock
from busline.consumer import Consumer
from busline.context import HandlerServices
from busline.middleware import Middleware, compose_consume
from busline.publishing import Publisher
from busline.registry import HandlerSpec, handler_call
from busline.retries import RetryMiddleware, RetryPolicy
from busline.sending import SendAfterSuccess
from busline.storage import StoreRuntime
from busline.tracing.settings import TracingSettings
from busline.transactional import StoreMiddleware
from busline.transport import Transport

if TYPE_CHECKING:
    from busline.tracing import Telemetry


def build_consumer(
    spec: HandlerSpec,
    outer: Sequence[Middleware],
    services: HandlerServices,
    *,
    publisher: Publisher,
    storage: StoreRuntime | None,
    retry: RetryPolicy,
    middleware: Sequence[Middleware],
    prefetch: int,
    max_message_size: int,
    clock: Clock,
) -> Consumer:
    """A handler's consumer with its chain composed once (see the module's order)."""
    inner: list[Middleware] = [RetryMiddleware(retry), *spec.stages]
    if storage is not None:
        inner.append(StoreMiddleware(storage))
    chain = compose_consume([*inner, *middleware], handler_call(spec))
    sender = SendAfterSuccess(publisher, storage, retry)
    return Consumer(spec, outer, chain, sender, services, prefetch, max_message_size, clock)


def retry_window(default: RetryPolicy, handlers: Sequence[HandlerSpec]) -> float:
    """The longest time, in seconds, over which a bus may retry a message."""
    policies = [default, *(spec.options.get("retry") for spec in handlers)]
    return max(policy.window for policy in policies if isinstance(policy, RetryPolicy))


def start_telemetry(
    settings: TracingSettings,
    *,
    service: str,
    transport: Transport,
    url: str,
    error_queue: str,
    handlers: Sequence[HandlerSpec],
) -> Telemetry | None:
    """The bus's telemetry, ``None`` when tracing is off."""
    # Imported here: the OpenTelemetry API costs import time that an untraced bus never pays.
    from busline.tracing import Telemetry

    return Telemetry.create(
        settings,
        service=service,
        system=transport.system,
        url=url,
        error_queue=error_queue,
        handlers=handlers,
    )


def tracing_middleware(telemetry: Telemetry) -> Middleware:
    """The tracing middleware over ``telemetry``."""
    from busline.tracing import TracingMiddleware

    middleware: Middleware = TracingMiddleware(telemetry)
    return middleware
