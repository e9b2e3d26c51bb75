"""Exceptions raised by busline. Every one derives from :class:`BuslineError`."""

from __future__ import annotations

import enum
from typing import Any


class BuslineError(Exception):
    """Base class of busline's own errors."""


class RegistrationError(BuslineError, TypeError):
    """A handler or subscriber declaration breaks the bus's rules (raised at decoration time)."""


class BusNotRunningError(BuslineError, RuntimeError):
    """The bus was used before ``start()`` (or ``async with bus``) or after ``stop()``."""


class PublishError(BuslineError):
    """The broker did not accept a message: it was not confirmed, so it must not count as sent."""


class UnroutableError(PublishError):
    """The broker returned a mandatory message: no queue was bound to receive it."""


class PublishTimeoutError(PublishError, TimeoutError):
    """The broker could not be reached (or did not confirm) within the send timeout."""


class MessageTooLargeError(BuslineError, ValueError):
    """An encoded message is larger than the bus's ``max_message_size``."""


class FailureReason(enum.StrEnum):
    """Why a message went to the error queue; written to the ``busline-error-reason`` header."""

    HANDLER_ERROR = "handler-error"
    REJECTED = "rejected"
    UNDECODABLE = "undecodable"
    UNKNOWN_TYPE = "unknown-type"
    SCHEMA_MISMATCH = "schema-mismatch"
    TOO_LARGE = "too-large"
    #: The body nests deeper than it can be decoded.
    TOO_DEEP = "too-deep"
    #: busline itself failed around the handler (a middleware or telemetry bug).
    INTERNAL = "internal"


class Reject(Exception):
    """Raise from a handler to send the message straight to the error queue, without retries."""


def qualified_name(cls: type[Any]) -> str:
    """An exception type's canonical name (``module.Class``; builtins by bare name), as written
    to error headers and to spans' ``error.type``."""
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
