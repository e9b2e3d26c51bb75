"""Content headers, decoded leniently: one bad property must not cost the connection.

pamqp decodes short strings as strict UTF-8, and raises on anything else. A reader that lets
that exception escape (as aiormq's does) drops the whole connection, reconnects, gets the same
message again, and loops. AMQP itself says nothing about the encoding of short strings and
RabbitMQ passes them through, so such a message is a fact of life. Here, when pamqp cannot decode
a header, the properties are decoded again one by one: short strings with undecodable bytes
replaced (U+FFFD), any other property that still fails left out. The delivery carries the reason
(:attr:`ContentHeader.error`) and the raw bytes, so the application can park that one message.
"""

from __future__ import annotations

import struct
from typing import Any

from pamqp import decode
from pamqp.commands import Basic
from pamqp.header import ContentHeader as PamqpContentHeader

from .errors import ProtocolError

_CLASS_WEIGHT_SIZE = struct.Struct(">HHQ")
_FLAGS = struct.Struct(">H")
_NAMES: tuple[str, ...] = tuple(Basic.Properties.__slots__)
_TYPES: dict[str, str] = {name: Basic.Properties.amqp_type(name) for name in _NAMES}
_FLAG_OF: dict[str, int] = dict(Basic.Properties.flags)


class ContentHeader:
    """A decoded content header: body size, properties, and what went wrong, if anything."""

    __slots__ = ("body_size", "error", "properties", "raw")

    def __init__(
        self,
        body_size: int,
        properties: Basic.Properties,
        error: str | None = None,
        raw: bytes | None = None,
    ) -> None:
        self.body_size = body_size
        self.properties = properties
        #: Why the properties could not be decoded strictly (``None`` when they could).
        self.error = error
        #: The undecodable frame payload, kept only when ``error`` is set.
        self.raw = raw


def decode_header(payload: bytes) -> ContentHeader:
    """Decode a content header frame's payload; never raises for a bad property."""
    if len(payload) < 14:
        raise ProtocolError(f"content header frame of {len(payload)} bytes")
    header = PamqpContentHeader()
    try:
        header.unmarshal(payload)
    except (ValueError, struct.error) as exc:
        _, _, body_size = _CLASS_WEIGHT_SIZE.unpack_from(payload)
        properties, problems = _lenient(payload[12:])
        reason = "; ".join(problems) or f"{type(exc).__name__}: {exc}"
        return ContentHeader(body_size, properties, f"undecodable properties: {reason}", payload)
    return ContentHeader(header.body_size, header.properties)


def _lenient(data: bytes) -> tuple[Basic.Properties, list[str]]:
    """The properties in ``data`` (flags first), each decoded on its own."""
    flags, offset, shift = 0, 0, 0
    while True:  # flag words chain while their lowest bit is set
        (word,) = _FLAGS.unpack_from(data, offset)
        offset += 2
        flags |= word << shift
        if not word & 1:
            break
        shift += 16
    properties = Basic.Properties()
    problems: list[str] = []
    view = data[offset:]
    for name in _NAMES:
        if not flags & _FLAG_OF[name]:
            continue
        kind = _TYPES[name]
        try:
            used, value = _decode(view, kind, name, problems)
        except (ValueError, struct.error, IndexError) as exc:
            # Without this property's length the rest cannot be located: stop here.
            problems.append(f"{name}: {exc}; later properties dropped")
            break
        setattr(properties, name, value)
        view = view[used:]
    return properties, problems


def _decode(view: bytes, kind: str, name: str, problems: list[str]) -> tuple[int, Any]:
    if kind == "shortstr":
        size = view[0]
        raw = view[1 : 1 + size]
        if len(raw) < size:
            raise ValueError("truncated short string")
        try:
            return 1 + size, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"{name} is not UTF-8 ({exc.reason} at byte {exc.start})")
            return 1 + size, raw.decode("utf-8", "replace")
    if kind == "table":
        (size,) = struct.unpack_from(">I", view)
        try:
            return decode.field_table(view)
        except (ValueError, struct.error) as exc:
            problems.append(f"{name} left out: {exc}")
            return 4 + size, None
    return decode.by_type(view, kind)
