"""Sagas under concurrency and restarts, on PostgreSQL (several instances of one service share
it), both transports: no lost update, one instance per key, a timeout fires once after a
restart, and a step that fails before its commit leaves nothing behind."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from busline import Bus, Context, Saga, SagaContext, StoreSettings
from busline.testing import VirtualClock
from tests.sagas.messages import Fulfilment, OrderPlaced, PaymentReceived, Touch
from tests.sagas.shop import DEADLINE, World, fulfilment_saga
from tests.stores.db import query
from tests.support import eventually

pytestmark = pytest.mark.postgres

FAST = StoreSettings(relay_interval=0.02, relay_max_backoff=0.1)


async def state_of(bus: Bus, key: str) -> tuple[Fulfilment, int] | None:
    assert bus.storage is not None
    for record in await bus.storage.store.list_sagas(saga="sagas.fulfilment"):
        if record.key == key:
            return msgspec.json.decode(record.state, type=Fulfilment), record.version
    return None


def service(bus_url: str, pg_url: str, clock: VirtualClock, name: str = "orders") -> Bus:
    bus = Bus(name, bus_url, store=pg_url, store_settings=FAST, clock=clock, prefetch=4)
    bus.add_saga(fulfilment_saga())
    return bus


async def test_twenty_concurrent_steps_of_one_instance_lose_no_update(bus_url, pg_url):
    clock = VirtualClock()
    workers = [service(bus_url, pg_url, clock) for _ in range(4)]
    world = World(Bus("world", bus_url, store=pg_url, store_settings=FAST, clock=clock))
    async with world.bus:
        for bus in workers:
            await bus.start()
        try:
            await workers[0].publish(OrderPlaced(order_id="o-1"))
            await world.wait_for(("ReserveStock", "o-1"))
            await asyncio.gather(*(workers[0].send(Touch(order_id="o-1", n=i)) for i in range(20)))
            await eventually(
                lambda: _touched(workers[0], 20), timeout=30, what="twenty touches recorded"
            )
            state, version = await state_of(workers[0], "o-1") or (None, 0)
        finally:
            for bus in workers:
                await bus.stop()
    assert state is not None and state.touches == 20
    assert version == 21


async def _touched(bus: Bus, count: int) -> bool:
    found = await state_of(bus, "o-1")
    return found is not None and found[0].touches >= count


async def test_two_starts_at_once_make_one_instance(bus_url, pg_url):
    clock = VirtualClock()
    workers = [service(bus_url, pg_url, clock) for _ in range(2)]
    world = World(Bus("world", bus_url, store=pg_url, store_settings=FAST, clock=clock))
    async with world.bus:
        for bus in workers:
            await bus.start()
        try:
            await asyncio.gather(
                *(workers[i % 2].publish(OrderPlaced(order_id="o-1")) for i in range(6))
            )
            await eventually(lambda: _version(workers[0], 6), timeout=30, what="six steps")
            records = await workers[0].storage.store.list_sagas()  # type: ignore[union-attr]
        finally:
            for bus in workers:
                await bus.stop()
    assert [(r.key, r.version) for r in records] == [("o-1", 6)]


async def _version(bus: Bus, version: int) -> bool:
    found = await state_of(bus, "o-1")
    return found is not None and found[1] == version


async def test_a_timeout_survives_a_restart_and_fires_once_with_two_instances(bus_url, pg_url):
    clock = VirtualClock()
    world = World(Bus("world", bus_url, store=pg_url, store_settings=FAST, clock=clock))
    async with world.bus:
        first = service(bus_url, pg_url, clock)
        async with first:
            await first.publish(OrderPlaced(order_id="o-1"))
            await world.wait_for(("ReserveStock", "o-1"))
            await first.publish(PaymentReceived(order_id="o-1"))
            await eventually(lambda: _version(first, 2), what="the payment recorded")
        # The service restarts as two instances; the deadline passes.
        again = [service(bus_url, pg_url, clock) for _ in range(2)]
        for bus in again:
            await bus.start()
        try:
            clock.advance(DEADLINE + 1)
            await world.wait_for(("RefundPayment", "o-1"), ("ReleaseStock", "o-1"))
            await eventually(lambda: _ended(again[0]), what="the instance ended")
            # Both relays keep polling; the timeout must not come again.
            await again[0].publish(OrderPlaced(order_id="o-2"))
            await world.wait_for(("ReserveStock", "o-2"))
        finally:
            for bus in again:
                await bus.stop()
    assert world.got[("RefundPayment", "o-1")] == 1
    assert world.got[("ReleaseStock", "o-1")] == 1


async def _ended(bus: Bus) -> bool:
    return await state_of(bus, "o-1") is None


async def test_a_step_failing_before_its_commit_leaves_nothing_half_written(bus_url, pg_url):
    saga = Saga("sagas.fulfilment", state=Fulfilment, key="order_id")
    failures = [True]

    @saga.starts(OrderPlaced)
    async def placed(evt: OrderPlaced, state: Fulfilment, ctx: SagaContext) -> None:
        await ctx.send(Touch(order_id=evt.order_id, n=1))
        state.touches = 99
        await ctx.request_timeout(60, Touch(order_id=evt.order_id, n=2))
        if failures:
            failures.pop()
            raise ConnectionError("crash between the handler and the commit")

    @saga.handles(Touch)
    async def touch(msg: Touch, state: Fulfilment, ctx: SagaContext) -> None:
        state.touches += 1

    seen: list[int] = []
    bus = Bus("orders", bus_url, store=pg_url, store_settings=FAST, clock=VirtualClock())
    bus.add_saga(saga)
    from busline import Middleware

    class Watch(Middleware):
        async def on_consume(self, ctx: Context, call_next) -> None:  # type: ignore[no-untyped-def]
            if isinstance(ctx.message, Touch):
                seen.append(ctx.message.n)
            await call_next(ctx)

    bus.middleware.append(Watch())
    async with bus:
        await bus.publish(OrderPlaced(order_id="o-1"))
        await eventually(lambda: _version(bus, 2), what="the step's command handled")
        state, version = await state_of(bus, "o-1") or (None, 0)
        outbox = await query(pg_url, "SELECT count(*) FROM busline_outbox")
    # The failed attempt rolled back its state, its command and its timeout; the retry wrote one
    # of each.
    assert seen == [1]
    assert state is not None and (state.touches, version) == (100, 2)
    assert outbox[0][0] == 2  # Touch n=1 (sent) and the timeout Touch n=2 (scheduled)
