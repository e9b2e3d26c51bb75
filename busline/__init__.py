"""busline: an asyncio message bus with commands, events, retries, outbox, sagas and tracing."""

from busline.bus import Bus
from busline.context import Context, OutgoingMessage
from busline.envelope import Envelope
from busline.errors import (
    BuslineError,
    BusNotRunningError,
    FailureReason,
    MessageTooLargeError,
    PublishError,
    PublishTimeoutError,
    RegistrationError,
    Reject,
    UnroutableError,
)
from busline.messages import Command, Event, Message, MessageKind
from busline.middleware import Middleware
from busline.retries import NO_RETRIES, RetryPolicy

__all__ = [
    "NO_RETRIES",
    "Bus",
    "BusNotRunningError",
    "BuslineError",
    "Command",
    "Context",
    "Envelope",
    "Event",
    "FailureReason",
    "Message",
    "MessageKind",
    "MessageTooLargeError",
    "Middleware",
    "OutgoingMessage",
    "PublishError",
    "PublishTimeoutError",
    "RegistrationError",
    "Reject",
    "RetryPolicy",
    "UnroutableError",
]
