"""Span names and static attributes of destinations and handlers, per the conventions.

Computed once per destination or handler and cached by :class:`~busline.tracing.Telemetry`, so
per message only the message id, conversation id and attempt are added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry.util.types import AttributeValue

from busline.errors import RegistrationError
from busline.messages import MessageKind
from busline.tracing import semconv as sc
from busline.tracing.settings import TRACE_MODES, TraceMode

if TYPE_CHECKING:
    from busline.registry import HandlerSpec

Attributes = dict[str, AttributeValue]


def check_trace_mode(value: Any, what: str) -> TraceMode:
    """Return ``value`` if it is a valid :data:`TraceMode`, else raise naming ``what``."""
    if value not in TRACE_MODES:
        raise RegistrationError(f"{what} must be 'child' or 'link', got {value!r}")
    mode: TraceMode = value
    return mode


@dataclass(frozen=True, slots=True)
class ProducerInfo:
    """What the send span and metrics of one destination share."""

    span_name: str
    attributes: Attributes
    metric_attributes: Attributes


@dataclass(frozen=True, slots=True)
class ConsumerInfo:
    """What the process spans and metrics of one handler share."""

    span_name: str
    destination: str
    mode: TraceMode
    attributes: Attributes
    metric_attributes: Attributes


def producer_info(
    kind: MessageKind, destination: str, system: str, service: str, server: Attributes
) -> ProducerInfo:
    """The span name and static attributes of sending ``kind`` to ``destination``."""
    # Commands go through the default exchange with the queue as routing key, events to a
    # fanout exchange with an empty one; the RabbitMQ conventions name the destination
    # "{exchange}:{routing key}" leaving out empty parts, which gives the wire name in both
    # cases. The memory transport copies RabbitMQ, so it is named the same way.
    operation = "send" if kind is MessageKind.COMMAND else "publish"
    common: Attributes = {
        sc.MESSAGING_SYSTEM: system,
        sc.MESSAGING_OPERATION_NAME: operation,
        sc.MESSAGING_DESTINATION_NAME: destination,
        **server,
    }
    attributes: Attributes = {
        **common,
        sc.MESSAGING_OPERATION_TYPE: sc.OPERATION_SEND,
        sc.BUSLINE_MESSAGE_KIND: kind.value,
        sc.BUSLINE_MESSAGE_TYPE: destination,
        sc.BUSLINE_SERVICE: service,
    }
    if system == sc.SYSTEM_RABBITMQ and kind is MessageKind.COMMAND:
        attributes[sc.MESSAGING_RABBITMQ_ROUTING_KEY] = destination
    return ProducerInfo(f"{operation} {destination}", attributes, common)


def consumer_info(
    spec: HandlerSpec, default: TraceMode, system: str, service: str, server: Attributes
) -> ConsumerInfo:
    """The span name, static attributes and trace mode of handler ``spec``."""
    wire = spec.wire_name
    # RabbitMQ conventions, consumer side: "{exchange}:{routing key}:{queue}" without empty
    # parts and with routing key == queue said once: the queue for a command (default
    # exchange), "{event exchange}:{subscriber queue}" for an event.
    destination = wire if spec.kind is MessageKind.COMMAND else f"{wire}:{spec.queue}"
    mode = check_trace_mode(spec.options.get("trace_as", default), f"{spec.name}: trace_as")
    common: Attributes = {
        sc.MESSAGING_SYSTEM: system,
        sc.MESSAGING_OPERATION_NAME: sc.OPERATION_PROCESS,
        sc.MESSAGING_DESTINATION_NAME: destination,
        # Instances of a service compete on a queue: that queue is their consumer group.
        sc.MESSAGING_CONSUMER_GROUP_NAME: spec.queue,
        **server,
    }
    attributes: Attributes = {
        **common,
        sc.MESSAGING_OPERATION_TYPE: sc.OPERATION_PROCESS,
        sc.BUSLINE_MESSAGE_KIND: spec.kind.value,
        sc.BUSLINE_MESSAGE_TYPE: wire,
        sc.BUSLINE_SERVICE: service,
        sc.BUSLINE_HANDLER: spec.name,
    }
    if system == sc.SYSTEM_RABBITMQ and spec.kind is MessageKind.COMMAND:
        attributes[sc.MESSAGING_RABBITMQ_ROUTING_KEY] = wire
    return ConsumerInfo(
        f"{sc.OPERATION_PROCESS} {destination}", destination, mode, attributes, common
    )


def server_attributes(url: str) -> Attributes:
    """``server.address`` and ``server.port`` of an ``amqp(s)://`` URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return {}
    attributes: Attributes = {}
    if parts.hostname:
        attributes[sc.SERVER_ADDRESS] = parts.hostname
        attributes[sc.SERVER_PORT] = port or (5671 if parts.scheme == "amqps" else 5672)
    return attributes
