"""Broker restarts and outages: confirmed means kept; sends wait for the reconnect or time out;
consumers resume."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from busline.transports.rabbitmq import RabbitMQTransport

from busline import Bus, PublishTimeoutError
from busline.envelope import Envelope, new_message_id
from busline.transport import ConsumerSpec, TransportSettings
from tests.rabbitmq.helpers import PlaceOrder, ready_count
from tests.servers import arestart_rabbitmq, astart_rabbitmq, astop_rabbitmq
from tests.support import eventually, headers_of, take_from_queue

pytestmark = pytest.mark.rabbitmq


async def test_no_confirmed_command_is_lost_over_a_broker_restart(amqp_url):
    bus = Bus("orders", amqp_url, send_timeout=60, prefetch=16)
    handled: dict[str, int] = {}

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        handled[cmd.order_id] = handled.get(cmd.order_id, 0) + 1

    # (order id, send started, send returned) of every send that returned.
    confirmed: list[tuple[str, float, float]] = []
    enough = asyncio.Event()
    target = 0
    stop = asyncio.Event()

    async def sender(worker: int) -> None:
        i = 0
        while not stop.is_set():
            order_id = f"{worker}-{i}"
            started = time.monotonic()
            await bus.send(PlaceOrder(order_id=order_id, amount=1.0))
            confirmed.append((order_id, started, time.monotonic()))
            if len(confirmed) >= target:
                enough.set()
            i += 1

    async with bus:
        target = 100
        senders = [asyncio.create_task(sender(w)) for w in range(4)]
        await asyncio.wait_for(enough.wait(), 30)
        enough.clear()
        outage_began = time.monotonic()
        await arestart_rabbitmq(fast=True)
        broker_back = time.monotonic()
        target = len(confirmed) + 100
        await asyncio.wait_for(enough.wait(), 60)
        stop.set()
        # Every send returned normally: none failed during the outage.
        await asyncio.wait_for(asyncio.gather(*senders), 60)

        sent_ids = {order_id for order_id, _, _ in confirmed}
        await eventually(
            lambda: sent_ids <= handled.keys(), timeout=60, what="every confirmed send handled"
        )

    # Some sends were issued while the broker was down, waited, and succeeded.
    waited = [c for c in confirmed if outage_began < c[1] < broker_back and c[2] > broker_back]
    assert waited, "no send overlapped the outage"
    assert len(confirmed) >= 200


async def test_consumers_resume_after_a_restart(amqp_url):
    bus = Bus("orders", amqp_url, send_timeout=60)
    handled: list[str] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        handled.append(cmd.order_id)

    async with bus:
        await bus.send(PlaceOrder(order_id="before", amount=1.0))
        await eventually(lambda: "before" in handled, what="the first command")
        await arestart_rabbitmq(fast=True)
        await bus.send(PlaceOrder(order_id="after", amount=1.0))
        await eventually(lambda: "after" in handled, timeout=30, what="a command after restart")


async def test_a_send_during_an_outage_times_out_then_works_again(amqp_url):
    bus = Bus("checkout", amqp_url, send_timeout=1.5)
    async with bus:
        await bus.send(PlaceOrder(order_id="before", amount=1.0))
        await astop_rabbitmq(fast=True)
        try:
            began = time.monotonic()
            with pytest.raises(PublishTimeoutError, match=r"amqp://guest:\*\*\*@"):
                await bus.send(PlaceOrder(order_id="during", amount=1.0))
            assert 1.4 <= time.monotonic() - began < 5
        finally:
            await astart_rabbitmq()

        async def send_after() -> bool:
            try:
                await bus.send(PlaceOrder(order_id="after", amount=1.0))
            except PublishTimeoutError:
                return False  # still reconnecting (backoff)
            return True

        await eventually(send_after, timeout=30, what="a send after the outage")
    assert await ready_count(amqp_url, "rmq.PlaceOrder") >= 2


async def test_settling_a_delivery_of_a_lost_connection_is_a_logged_no_op(amqp_url, caplog):
    caplog.set_level(logging.DEBUG, logger="busline.rabbitmq")
    transport = RabbitMQTransport(amqp_url, TransportSettings(service="t", send_timeout=60))
    await transport.start()
    try:
        received: asyncio.Queue = asyncio.Queue()
        await transport.subscribe(ConsumerSpec("rmq.PlaceOrder", prefetch=4), received.put_nowait)
        for _ in range(2):
            message_id = new_message_id()
            envelope = Envelope(message_id, "rmq.PlaceOrder", b"{}", message_id, message_id)
            await transport.send("rmq.PlaceOrder", envelope)
        old = [await asyncio.wait_for(received.get(), 10) for _ in range(2)]

        await arestart_rabbitmq(fast=True)
        again = [await asyncio.wait_for(received.get(), 60) for _ in range(2)]

        # Settling the old ones raises nothing and does nothing: the broker already gave the
        # messages back, and they came again.
        await old[0].ack()
        await old[1].dead_letter({"busline-error-reason": "handler-error"})
        assert all(d.redelivered for d in again)
        assert {d.envelope.message_id for d in again} == {d.envelope.message_id for d in old}
        for delivery in again:
            await delivery.ack()
    finally:
        await transport.close()
    assert "its channel is gone, the broker redelivers it" in caplog.text
    assert await ready_count(amqp_url, "busline.error") == 0
    assert await ready_count(amqp_url, "rmq.PlaceOrder") == 0


async def test_no_valid_message_is_parked_over_restarts_under_concurrent_load(amqp_url, caplog):
    """Pipelined publishes, batched acks and in-flight deliveries all cross two restarts: a
    frame of a dead connection mixed into a new one, a delivery settled on the wrong channel or
    a message read with half its properties would show up as a parked message (unknown-type,
    undecodable) or a dispatch warning. A handler that never raises must park nothing."""
    caplog.set_level(logging.WARNING, logger="busline.dispatch")
    bus = Bus("orders", amqp_url, queue_type="classic", prefetch=32, send_timeout=60)
    handled: set[str] = set()

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        handled.add(cmd.order_id)

    confirmed: set[str] = set()
    stop = asyncio.Event()

    async def sender(worker: int) -> None:
        i = 0
        while not stop.is_set():
            order_id = f"{worker}-{i}"
            await bus.send(PlaceOrder(order_id=order_id, amount=1.0))
            confirmed.add(order_id)
            i += 1

    async def more_sends(count: int, what: str) -> None:
        target = len(confirmed) + count
        await eventually(lambda: len(confirmed) >= target, timeout=60, what=what)

    async with bus:
        senders = [asyncio.create_task(sender(w)) for w in range(64)]
        try:
            for _ in range(2):
                await more_sends(500, "sends before a restart")
                await arestart_rabbitmq(fast=True)
            await more_sends(500, "sends after the restarts")
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*senders), 60)

        def dispatch_warnings() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.name == "busline.dispatch"]

        # Stop early if something was parked: it would never be handled.
        await eventually(
            lambda: confirmed <= handled or bool(dispatch_warnings()),
            timeout=60,
            what="every confirmed send handled",
        )
        assert not dispatch_warnings()

    parked = await ready_count(amqp_url, "busline.error")
    if parked:
        messages = await take_from_queue(amqp_url, "busline.error", parked)
        reasons = [
            {k: v for k, v in headers_of(m).items() if k.startswith("busline-error-")}
            for m in messages[:3]
        ]
        pytest.fail(f"{parked} valid message(s) parked, e.g. {reasons}")
