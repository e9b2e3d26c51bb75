"""The messaging metrics and busline's own, with the conventions' names, units and attributes."""

from __future__ import annotations

import asyncio

from busline import RetryPolicy
from busline.tracing.telemetry import Telemetry
from tests.support import eventually
from tests.tracing.messages import PaymentCaptured, PlaceOrder


async def test_messaging_metrics_are_recorded(make_bus, traced, metrics, spans, bus_url):
    bus = make_bus("shop", retry=RetryPolicy(immediate=0, delays=()), **traced)
    done = asyncio.Event()

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        if cmd.order_id == "bad":
            raise ValueError("boom")

    @bus.event_subscriber
    async def on_captured(evt: PaymentCaptured) -> None:
        done.set()

    async with bus:
        await bus.send(PlaceOrder(order_id="good"))
        await bus.send(PlaceOrder(order_id="bad"))
        await bus.publish(PaymentCaptured(order_id="good"))
        await asyncio.wait_for(done.wait(), 10)
        await spans.wait_for("process shop.PlaceOrder", count=2)

    system = "busline-memory" if bus_url.startswith("memory://") else "rabbitmq"
    found = metrics.collect()
    for name, unit in [
        ("messaging.client.sent.messages", "{message}"),
        ("messaging.client.consumed.messages", "{message}"),
        ("messaging.process.duration", "s"),
        ("messaging.client.operation.duration", "s"),
        ("busline.dead_lettered", "{message}"),
    ]:
        assert name in found, f"{name} missing from {sorted(found)}"
        assert found[name].unit == unit

    sent = {
        (a["messaging.operation.name"], a["messaging.destination.name"]): p.value
        for a, p in metrics.points("messaging.client.sent.messages")
    }
    assert sent == {("send", "shop.PlaceOrder"): 2, ("publish", "shop.PaymentCaptured"): 1}
    for attributes, _ in metrics.points("messaging.client.sent.messages"):
        assert attributes["messaging.system"] == system

    consumed = {
        a["messaging.destination.name"]: p.value
        for a, p in metrics.points("messaging.client.consumed.messages")
    }
    assert consumed == {"shop.PlaceOrder": 2, "shop.PaymentCaptured:shop.on_captured": 1}

    durations = metrics.points("messaging.process.duration")
    failed = [p for a, p in durations if a.get("error.type") == "ValueError"]
    succeeded = [
        p
        for a, p in durations
        if "error.type" not in a and a["messaging.destination.name"] == "shop.PlaceOrder"
    ]
    assert [p.count for p in failed] == [1] and [p.count for p in succeeded] == [1]
    for attributes, _ in durations:
        assert attributes["messaging.operation.name"] == "process"
        assert attributes["messaging.system"] == system
        assert "messaging.consumer.group.name" in attributes
    # The conventions' bucket boundaries are used.
    assert list(failed[0].explicit_bounds)[:3] == [0.005, 0.01, 0.025]

    operation = metrics.points("messaging.client.operation.duration")
    assert sum(p.count for _, p in operation) == 3

    [(dead_attrs, dead)] = metrics.points("busline.dead_lettered")
    assert dead.value == 1
    assert dead_attrs["busline.dead_letter.reason"] == "handler-error"


async def test_outbox_backlog_gauge_reports_what_the_store_pushes(metrics):
    telemetry = Telemetry(
        service="orders", system="busline-memory", meter_provider=metrics.provider
    )
    assert metrics.points("busline.outbox.backlog") == []
    telemetry.set_outbox_backlog(7)
    await eventually(lambda: metrics.points("busline.outbox.backlog") != [])
    [(attributes, point)] = metrics.points("busline.outbox.backlog")
    assert point.value == 7
    assert attributes == {"busline.service": "orders"}


async def test_retries_are_counted(traced, metrics, spans):
    from busline import Bus
    from busline.testing import VirtualClock, memory_url

    clock = VirtualClock()
    bus = Bus(
        "shop", memory_url(), clock=clock, retry=RetryPolicy(immediate=0, delays=(30.0,)), **traced
    )
    attempts: list[int] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first time fails")

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1"))
        await spans.wait_for("process shop.PlaceOrder")
        clock.advance(30.0)
        await spans.wait_for("process shop.PlaceOrder", count=2)

    [(attributes, point)] = metrics.points("busline.retries")
    assert point.value == 1
    assert attributes["busline.retry.kind"] == "delayed"
    assert attributes["messaging.destination.name"] == "shop.PlaceOrder"
    assert metrics.collect()["busline.retries"].unit == "{retry}"
    assert metrics.points("busline.dead_lettered") == []


async def test_a_bus_with_a_store_reports_its_outbox_backlog(make_bus, traced, metrics, tmp_path):
    from busline import StoreSettings

    bus = make_bus(
        "shop",
        store=f"sqlite:///{tmp_path}/shop.db",
        store_settings=StoreSettings(cleanup_interval=0.05),
        **traced,
    )

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None: ...

    async with bus:
        async with bus.transaction() as tx:
            await tx.send(PlaceOrder(order_id="o-1"))
        await eventually(lambda: metrics.points("busline.outbox.backlog") != [])
    [(attributes, point)] = metrics.points("busline.outbox.backlog")
    assert attributes == {"busline.service": "shop"}
    assert point.value == 0  # sent right after the commit: nothing waits
