"""Hypothesis strategies for the poison run: message bodies, AMQP property values and header
tables of every type, size and depth, each case knowing whether busline must handle it (valid)
or park it (bad).

Validity is decided by construction, never by asking busline: a valid case is a JSON object
with a fresh ``key`` string, the right ``type`` property, at most :data:`MAX_SIZE` bytes and a
nesting of at most :data:`SAFE_DEPTH`; every family of bad cases breaks exactly one of those.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import msgspec
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as fixed_seed
from hypothesis import strategies as st

from tests.faults.ledger import Work

WIRE = "faults.Work"
#: The consumer's max_message_size in the poison run.
MAX_SIZE = 64 * 1024
#: Nesting a valid case may have (far below any recursion limit) and the least a too-deep one
#: has (far above): nothing is generated near the limit, where the verdict is the platform's.
SAFE_DEPTH, DEEP = 200, 3_000
FAMILIES = ("valid", "valid-big", "too-large", "too-deep", "not-json", "wrong-schema", "no-type")


@dataclass
class Draft:
    """One generated case before it is given its index (which makes its key unique)."""

    family: str
    properties: dict[str, Any]
    headers: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)
    depth: int = 0
    pad: int = 0
    raw: bytes = b""
    type_: str | None = WIRE

    @property
    def valid(self) -> bool:
        return self.family.startswith("valid")

    def body(self, key: str) -> bytes:
        if self.family in ("not-json", "wrong-schema"):
            return self.raw
        nested = "[" * self.depth + "0" + "]" * self.depth
        document = json.dumps({**self.extras, "key": key, "pad": "p" * self.pad})
        return f'{document[:-1]}, "nest": {nested}}}'.encode()


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
header_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)  # pamqp packs floats as 'f'
    | st.text(max_size=60)
    | st.binary(max_size=60).map(bytearray)  # pamqp encodes bytearray as a byte array
    | st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1))
)
header_values = st.recursive(
    header_leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(min_size=1, max_size=10), inner, max_size=3)
    ),
    max_leaves=12,
)
#: Header names: random ones (not the broker's own x-*, CC, BCC) and busline's, with values
#: of any type; the idempotency key is left out, a collision would make a case a duplicate.
header_names = st.sampled_from(
    ["busline-attempt", "busline-conversation-id", "busline-causation-id", "traceparent"]
) | st.text(min_size=1, max_size=20).filter(
    lambda k: not k.lower().startswith("x-") and k not in ("CC", "BCC")
    and not k.startswith("busline-idempotency")
)  # fmt: skip
header_tables = st.dictionaries(header_names, header_values, max_size=5)
short_texts = st.none() | st.text(max_size=40).filter(lambda s: len(s.encode()) < 200)
properties = st.fixed_dictionaries(
    {},
    optional={
        "content_type": short_texts,
        "content_encoding": short_texts,
        "correlation_id": short_texts,
        "reply_to": short_texts,
        "app_id": short_texts,
        "message_id": short_texts,
        "priority": st.integers(0, 255),
        "timestamp": st.datetimes(
            min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1)
        ),
    },
)


def _not_work(body: bytes) -> bool:
    """True when ``body`` does not decode as a :class:`Work` (plain msgspec, not busline)."""
    try:
        msgspec.json.decode(body, type=Work)
    except (msgspec.DecodeError, RecursionError):
        return True
    return False


def _not_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return True
    return False


@st.composite
def drafts(draw: st.DrawFn) -> Draft:
    """One case of a random family, with random properties and headers."""
    family = draw(st.sampled_from(FAMILIES))
    case = Draft(family, draw(properties), draw(header_tables))
    case.extras = draw(
        st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ("key", "pad", "nest")),
                        json_values, max_size=4)
    )  # fmt: skip
    case.depth = draw(st.integers(0, SAFE_DEPTH))
    if family == "valid-big":
        case.pad = draw(st.integers(1_000, MAX_SIZE - 2_000))
        case.extras = {}
    elif family == "too-large":
        case.pad = draw(st.integers(MAX_SIZE + 1, 4 * MAX_SIZE))
    elif family == "too-deep":
        case.depth = draw(st.integers(DEEP, 2 * DEEP))
    elif family == "not-json":
        case.raw = draw(st.binary(max_size=300).filter(_not_json))
    elif family == "wrong-schema":
        case.raw = draw(json_values.map(lambda v: json.dumps(v).encode()).filter(_not_work))
    elif family == "no-type":
        case.type_ = draw(st.none() | st.text(max_size=40).filter(lambda t: t != WIRE))
    return case


def generate(count: int, seed: int | None = None) -> list[Draft]:
    """``count`` cases drawn by hypothesis (its generate phase only: nothing is shrunk, the
    run itself judges them)."""
    found: list[Draft] = []

    @settings(
        max_examples=count,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(drafts())
    def collect(case: Draft) -> None:
        found.append(case)

    if seed is not None:
        collect = fixed_seed(seed)(collect)
    collect()
    return found
