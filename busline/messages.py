"""Message base classes: :class:`Command` ("please do X") and :class:`Event` ("X happened").

Messages are ``msgspec.Struct`` subclasses, so they are typed, fast to encode and validated on
decode. Each message type has a stable *wire name*, the string that travels in the AMQP ``type``
property and names its queue (commands) or exchange (events). It defaults to the class name and
can be chosen explicitly, so that moving or renaming a class does not break the wire::

    class PlaceOrder(Command, wire_name="shop.PlaceOrder"):
        order_id: str
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

import msgspec
from msgspec import StructMeta


class MessageKind(enum.Enum):
    """Whether a message is a command (one owner) or an event (any number of readers)."""

    COMMAND = "command"
    EVENT = "event"


class _MessageMeta(StructMeta):
    """Accepts the ``wire_name=`` class keyword, which plain msgspec structs would reject."""

    def __new__(
        mcls,
        cls_name: str,
        bases: tuple[type, ...],
        namespace: dict[str, Any],
        wire_name: str | None = None,
        **struct_options: Any,
    ) -> _MessageMeta:
        cls = super().__new__(mcls, cls_name, bases, namespace, **struct_options)
        # An inherited __wire_name__ must not leak into subclasses: each type names itself.
        explicit = wire_name or namespace.get("__wire_name__")
        if explicit is not None and (not isinstance(explicit, str) or not explicit.strip()):
            raise TypeError(f"{cls_name}: wire_name must be a non-empty string, got {explicit!r}")
        cls.__wire_name__ = explicit or cls_name  # type: ignore[attr-defined]
        return cls


class Message(msgspec.Struct, metaclass=_MessageMeta, kw_only=True):
    """Base of every message. Subclass :class:`Command` or :class:`Event`, not this."""

    __wire_name__: ClassVar[str]
    __message_kind__: ClassVar[MessageKind | None] = None


class Command(Message):
    """An intent aimed at exactly one owner: sent with ``send``, handled by one handler type."""

    __message_kind__: ClassVar[MessageKind | None] = MessageKind.COMMAND


class Event(Message):
    """A fact about the past: published with ``publish``, delivered to every subscriber."""

    __message_kind__: ClassVar[MessageKind | None] = MessageKind.EVENT


def wire_name(message_type: type[Message]) -> str:
    """Return the stable wire name of a message type."""
    return message_type.__wire_name__


def kind_of(message_type: type[Any]) -> MessageKind | None:
    """Return the kind of a message class, or ``None`` if it is not a command or event type."""
    if isinstance(message_type, type) and issubclass(message_type, Message):
        return message_type.__message_kind__
    return None
