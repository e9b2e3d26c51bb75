"""JSON encoding and decoding of message bodies with msgspec, decoders cached per type."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from busline.errors import FailureReason

M = TypeVar("M")

_encoder = msgspec.json.Encoder()
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


class BodyDecodeError(Exception):
    """A body could not be turned into its message type; ``reason`` says which way it failed."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def encode(message: Any) -> bytes:
    """Encode a message's fields as a JSON object."""
    return _encoder.encode(message)


def decoder_for(message_type: type[M]) -> msgspec.json.Decoder[M]:
    """Return the (cached) validating decoder for ``message_type``."""
    decoder = _decoders.get(message_type)
    if decoder is None:
        decoder = _decoders[message_type] = msgspec.json.Decoder(message_type)
    return decoder


def decode(body: bytes, message_type: type[M]) -> M:
    """Decode and validate ``body`` as ``message_type``.

    Raises :class:`BodyDecodeError` with reason ``schema-mismatch`` when the JSON is valid but
    does not fit the type, ``too-deep`` when it nests deeper than the decoder's recursion limit,
    and ``undecodable`` for anything else that keeps it from decoding: whatever goes wrong, a
    body that cannot be read is a poison message with a reason, never an internal error.
    """
    try:
        return decoder_for(message_type).decode(body)
    except msgspec.ValidationError as exc:
        raise BodyDecodeError(FailureReason.SCHEMA_MISMATCH, str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise BodyDecodeError(FailureReason.UNDECODABLE, str(exc)) from exc
    except RecursionError as exc:
        raise BodyDecodeError(
            FailureReason.TOO_DEEP, f"the JSON nests too deeply to decode ({exc})"
        ) from exc
    except (ValueError, TypeError, OverflowError, MemoryError) as exc:
        raise BodyDecodeError(
            FailureReason.UNDECODABLE, f"{type(exc).__name__}: {exc}"[:2000]
        ) from exc
