"""busline: an asyncio message bus with commands, events, retries, outbox, inbox, sagas and
tracing."""

from busline.bus import Bus
from busline.context import Context
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
from busline.outcomes import Outcome, OutcomeKind
from busline.outgoing import OutgoingMessage
from busline.retries import NO_RETRIES, RetryPolicy
from busline.saga import Saga
from busline.saga_context import SagaContext
from busline.stores import (
    GroupCommitError,
    NestedTransactionError,
    NoStoreError,
    StoreError,
    StoreSettings,
)
from busline.tracing.settings import TracingSettings
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
    "GroupCommitError",
    "MemoryDeduplication",
    "Message",
    "MessageKind",
    "MessageTooLargeError",
    "Middleware",
    "NestedTransactionError",
    "NoStoreError",
    "Outcome",
    "OutcomeKind",
    "OutgoingMessage",
    "PublishError",
    "PublishTimeoutError",
    "RegistrationError",
    "Reject",
    "RetryPolicy",
    "Saga",
    "SagaContext",
    "StoreError",
    "StoreSettings",
    "TracingSettings",
    "Transaction",
    "UnroutableError",
]
