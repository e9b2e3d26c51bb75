"""Poison: generated messages published raw with a plain AMQP client, interleaved with valid
ones. Each valid one must be handled once, each bad one parked with a reason, and the consumer
must stay alive (a marker published last is handled)."""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import aio_pika
import aiormq

from tests.faults.cases import MAX_SIZE, WIRE, Draft, generate
from tests.faults.env import FaultEnv
from tests.faults.ledger import DuplicateCounter, Effects, Result, consumer_bus, prepare, settle
from tests.faults.plain import (
    ERROR_QUEUE,
    drain,
    publish_raw,
    raw_property_bytes,
    ready_count,
    until,
)

REASON = "busline-error-reason"


async def _publish(url: str, items: list[tuple[bytes, dict[str, Any]]]) -> None:
    """Publish each (body, properties) to the Work queue with confirms, in order."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        for body, props in items:
            await publish_raw(channel, WIRE, body, **props)
    finally:
        await connection.close()


def _materialise(index: int, case: Draft) -> tuple[bytes, dict[str, Any]]:
    props = dict(case.properties)
    props["type"] = case.type_
    # Unique ids: two cases sharing a message id would be one operation to the inbox. Without
    # NUL: busline parks an id holding one on purpose (the inbox cannot store it), a case of
    # its own in poison-odd-properties; here it would make a valid case bad by chance.
    generated = (props.get("message_id") or "").replace("\x00", "")
    props["message_id"] = f"c{index}-{generated}"[:200]
    props["headers"] = {**case.headers, "x-case": index}
    return case.body(f"p{index}"), props


async def _parked_cases(url: str) -> tuple[dict[int, list[str]], Counter[str], int]:
    """Parked messages by case index (each as "reason: message"), the count of each reason,
    and how many had no reason."""
    per_case: dict[int, list[str]] = {}
    reasons: Counter[str] = Counter()
    unexplained = 0
    for message in await drain(url, ERROR_QUEUE):
        headers = {
            k: v.decode() if isinstance(v, bytes) else v for k, v in (message.headers or {}).items()
        }
        reason = headers.get(REASON)
        if not reason:
            unexplained += 1
        reasons[str(reason)] += 1
        case = headers.get("x-case")
        if isinstance(case, int):
            why = f"{reason}: {str(headers.get('busline-error-message', ''))[:80]}"
            per_case.setdefault(case, []).append(why)
    return per_case, reasons, unexplained


async def poison_run(env: FaultEnv) -> Result:
    """Scenario 7: hypothesis-generated poison among valid messages."""
    result = Result("poison run (hypothesis-generated)")
    # CI replays one fixed draw; the long run draws anew each time and says with which seed.
    seed = random.randrange(2**32) if env.long else 15
    drafts = generate(3_000 if env.long else 300, seed=seed)
    url, store = await env.vhost(), await env.pg.new_database()
    await prepare(store)
    effects = Effects(store)
    items = [_materialise(i, d) for i, d in enumerate(drafts)]
    valid = {f"p{i}" for i, d in enumerate(drafts) if d.valid}
    bad = {i for i, d in enumerate(drafts) if not d.valid}
    marker = len(drafts)
    items.append((f'{{"key": "p{marker}"}}'.encode(), {"type": WIRE, "message_id": "marker"}))
    consumer = consumer_bus(url, store, max_message_size=MAX_SIZE, shutdown_timeout=10)
    deadline = time.monotonic() + (300 if env.long else 90)
    with DuplicateCounter() as dups:
        async with consumer:
            await _publish(url, items)
            # Done when every message is accounted for, handled or parked, whichever it is:
            # a valid message parked by mistake must not keep the run waiting.
            result.finished = await until(
                lambda: _accounted(effects, url, len(items)), deadline, interval=0.2
            )
    await settle(result, effects, valid | {f"p{marker}"})
    per_case, reasons, unexplained = await _parked_cases(url)
    result.absorbed = dups.count
    result.parked = sum(map(len, per_case.values())) + unexplained
    result.sent = len(items)
    alive = result.handled and f"p{marker}" in (await effects.counts())
    result.check("every bad message parked once", all(len(per_case.get(i, ())) == 1 for i in bad))
    wrongly = {i: why for i, why in per_case.items() if i not in bad}
    result.check("no valid message parked", not wrongly)
    result.check("every parked message has a reason", unexplained == 0)
    result.check("consumer alive (marker handled)", bool(alive))
    families = Counter(d.family for d in drafts)
    result.notes.append(f"seed {seed}; {len(valid)} valid, {len(bad)} bad: " + _fmt(families))
    result.notes.append("reasons: " + _fmt(reasons))
    for index, why in sorted(wrongly.items())[:5]:
        result.notes.append(
            f"VALID case {index} parked ({why[0]}), properties {items[index][1]!r}"[:300]
        )
    return result


async def _accounted(effects: Effects, url: str, total: int) -> bool:
    return await effects.handled() + await ready_count(url, ERROR_QUEUE) >= total


def _fmt(counter: Counter[Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.most_common())


async def _publish_odd(url: str, valid: set[str]) -> None:
    """Two messages whose ``type`` / ``correlation_id`` bytes are not UTF-8 (cases 0 and 1), a
    valid one whose message id holds a NUL character (case 2, key ``nul``), then ``valid``."""
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        odd: list[tuple[bytes, dict[str, Any]]] = []
        for index, name in enumerate(("message_type", "correlation_id")):
            # aiormq names the ``type`` property message_type.
            props = {"message_type": WIRE, "message_id": f"bad-{index}"}
            props[name] = b"\xff\xfe not UTF-8"
            odd.append((b'{"key": "bad"}', props))
        odd.append((b'{"key": "nul"}', {"message_type": WIRE, "message_id": "nul\x00id"}))
        with raw_property_bytes():
            for index, (body, props) in enumerate(odd):
                properties = aiormq.spec.Basic.Properties(
                    delivery_mode=2, headers={"x-case": index}, **props
                )
                await channel.basic_publish(body, routing_key=WIRE, properties=properties)
        for key in sorted(valid):
            properties = aiormq.spec.Basic.Properties(delivery_mode=2, message_type=WIRE)
            await channel.basic_publish(f'{{"key": "{key}"}}'.encode(), routing_key=WIRE,
                                        properties=properties)  # fmt: skip
    finally:
        await connection.close()


async def odd_properties(env: FaultEnv) -> Result:
    """Scenario 7b: property bytes that are not UTF-8 (any client in another language can send
    them) and a message id holding NUL (legal in AMQP, impossible in PostgreSQL text), then 50
    valid messages behind them; 30 s to get through."""
    result = Result("poison: non-UTF-8 bytes, NUL in message id")
    url, store = await env.vhost(), await env.pg.new_database()
    await prepare(store)
    effects = Effects(store)
    valid = {f"v{i}" for i in range(50)}
    deadline = time.monotonic() + 30

    async def nul_settled() -> bool:
        return "nul" in await effects.counts() or await ready_count(url, ERROR_QUEUE) >= 3

    async with consumer_bus(url, store, shutdown_timeout=10):
        await _publish_odd(url, valid)
        result.finished = await effects.wait_for(len(valid), deadline)
        await until(nul_settled, deadline, interval=0.2)
    await settle(result, effects, valid)
    per_case, reasons, unexplained = await _parked_cases(url)
    nul_handled = (await effects.counts()).get("nul") == 1
    nul_parked = [why for why in per_case.get(2, []) if not why.startswith("handler-error")]
    result.sent = len(valid) + 3
    result.parked = sum(map(len, per_case.values())) + unexplained
    if not result.finished:
        result.notes.append(f"deadline 30 s: {result.handled} of {len(valid)} valid handled")
    result.notes.append("reasons: " + (_fmt(reasons) or "none"))
    nul_fate = "handled" if nul_handled else "; ".join(per_case.get(2, [])) or "neither"
    result.notes.append(f"NUL message id within 30 s: {nul_fate}")
    result.check(
        "both non-UTF-8 messages parked", all(len(per_case.get(i, ())) == 1 for i in (0, 1))
    )
    result.check("a NUL message id is handled or parked at once", nul_handled or bool(nul_parked))
    return result
