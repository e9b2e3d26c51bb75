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
from busline.inbox import MemoryDeduplication
from busline.messages import Command, Event, Message, MessageKind
from busline.middleware import Middleware
from busline.retries import NO_RETRIES, RetryPolicy
from busline.stores import NestedTransactionError, NoStoreError, StoreError, StoreSettings
from busline.transaction import Transaction

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
    "MemoryDeduplication",
    "Message",
    "MessageKind",
    "MessageTooLargeError",
    "Middleware",
    "NestedTransactionError",
    "NoStoreError",
    "OutgoingMessage",
    "PublishError",
    "PublishTimeoutError",
    "RegistrationError",
    "Reject",
    "RetryPolicy",
    "StoreError",
    "StoreSettings",
    "Transaction",
    "UnroutableError",
]
