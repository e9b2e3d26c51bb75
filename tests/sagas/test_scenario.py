"""The saga scenario helper: a saga tested in a few lines, with virtual time and no broker."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from busline import RegistrationError, Saga, SagaContext, StoreSettings
from busline.testing import SagaScenario
from tests.sagas.messages import (
    Fulfilment,
    OrderPlaced,
    PaymentOverdue,
    PaymentReceived,
    RefundPayment,
    ReleaseStock,
    ReserveStock,
    RetrievePayment,
    ShipOrder,
    StockReserved,
)
from tests.sagas.shop import DEADLINE, fulfilment_saga
from tests.support import take_from_queue


async def test_the_deadline_case_reads_in_a_few_lines():
    async with SagaScenario(fulfilment_saga()) as scenario:
        step = await scenario.handle(OrderPlaced(order_id="o-1", amount=9.5))
        assert step.sent == [
            ReserveStock(order_id="o-1"),
            RetrievePayment(order_id="o-1", amount=9.5),
        ]
        assert scenario.pending_timeouts() == [("sagas.PaymentOverdue", DEADLINE)]
        await scenario.handle(PaymentReceived(order_id="o-1"))
        assert (await scenario.state("o-1")).paid

        assert (await scenario.advance(DEADLINE - 1)).sent == []
        step = await scenario.advance(1)
        # Compensated newest first, then ended.
        assert step.sent == [RefundPayment(order_id="o-1"), ReleaseStock(order_id="o-1")]
        assert await scenario.state("o-1") is None
        assert scenario.pending_timeouts() == []
        # A late fact finds nothing and does nothing.
        assert (await scenario.handle(StockReserved(order_id="o-1"))).sent == []


async def test_both_facts_ship_once_and_the_timeout_is_gone():
    async with SagaScenario(fulfilment_saga()) as scenario:
        await scenario.handle(OrderPlaced(order_id="o-1"))
        await scenario.handle(StockReserved(order_id="o-1"))
        step = await scenario.handle(PaymentReceived(order_id="o-1"))
        assert step.sent == [ShipOrder(order_id="o-1")]
        assert scenario.pending_timeouts() == []
        assert (await scenario.advance(DEADLINE * 2)).sent == []


async def test_a_timeout_requested_again_replaces_the_pending_one():
    saga = Saga("sagas.reminders", state=Fulfilment, key="order_id")

    @saga.starts(OrderPlaced)
    async def placed(evt: OrderPlaced, state: Fulfilment, ctx: SagaContext) -> None:
        await ctx.request_timeout(60, PaymentOverdue(order_id=evt.order_id))

    @saga.handles(PaymentReceived)
    async def nudged(evt: PaymentReceived, state: Fulfilment, ctx: SagaContext) -> None:
        await ctx.request_timeout(600, PaymentOverdue(order_id=evt.order_id))

    @saga.handles(PaymentOverdue)
    async def overdue(msg: PaymentOverdue, state: Fulfilment, ctx: SagaContext) -> None:
        state.touches += 1

    async with SagaScenario(saga) as scenario:
        await scenario.handle(OrderPlaced(order_id="o-1"))
        await scenario.advance(30)
        await scenario.handle(PaymentReceived(order_id="o-1"))
        assert scenario.pending_timeouts() == [("sagas.PaymentOverdue", 600.0)]
        await scenario.advance(100)  # the first deadline (60) would have passed
        assert (await scenario.state("o-1")).touches == 0
        await scenario.advance(500)
        assert (await scenario.state("o-1")).touches == 1


async def test_a_field_added_with_a_default_reads_old_rows_and_a_broken_row_is_parked(tmp_path):
    class Before(msgspec.Struct):
        order_id: str
        paid: bool = False

    class After(msgspec.Struct):  # the next release: a new class, a new field with a default
        order_id: str
        paid: bool = False
        note: str = "none yet"

    def saga_on(state: type[msgspec.Struct]) -> Saga:
        saga = Saga("sagas.versioned", state=state, key="order_id")

        @saga.starts(OrderPlaced)
        async def placed(evt: OrderPlaced, st: Any, ctx: SagaContext) -> None: ...

        @saga.handles(PaymentReceived)
        async def paid(evt: PaymentReceived, st: Any, ctx: SagaContext) -> None:
            st.paid = True

        return saga

    store = f"sqlite:///{tmp_path}/versioned.db"
    async with SagaScenario(saga_on(Before), store=store) as old:
        await old.handle(OrderPlaced(order_id="o-1"))
        await old.handle(OrderPlaced(order_id="o-2"))
    async with SagaScenario(saga_on(After), store=store) as new:
        await new.handle(PaymentReceived(order_id="o-1"))
        assert await new.state("o-1") == After(order_id="o-1", paid=True)
        db = new.bus.storage.store  # type: ignore[union-attr]
        async with db.transaction() as tx:
            await tx.connection.execute(
                "UPDATE busline_sagas SET state = ? WHERE key = ?", (b'{"paid": "yes"}', "o-2")
            )
        await new.handle(PaymentReceived(order_id="o-2"))
        parked = await take_from_queue(new.bus.url, "busline.error", 1)
    assert parked[0].headers["busline-error-reason"] == "rejected"
    assert "does not decode" in parked[0].headers["busline-error-message"]


def test_timeouts_must_be_commands_the_saga_handles():
    saga = fulfilment_saga()
    with pytest.raises(RegistrationError, match="already handles"):
        saga.handles(PaymentOverdue)


async def test_completed_instances_can_be_kept_for_a_while():
    settings = StoreSettings(relay_interval=3600.0, saga_retention=3600.0)
    async with SagaScenario(fulfilment_saga(), store_settings=settings) as scenario:
        await scenario.handle(OrderPlaced(order_id="o-1"))
        await scenario.handle(StockReserved(order_id="o-1"))
        await scenario.handle(PaymentReceived(order_id="o-1"))
        store = scenario.bus.storage.store  # type: ignore[union-attr]
        [kept] = await store.list_sagas(status="completed")
        assert (kept.key, kept.status, kept.version) == ("o-1", "completed", 3)
        assert [s.outcome for s in await store.saga_history(kept.saga, "o-1")] == [
            "started",
            "updated",
            "completed",
        ]
        scenario.clock.advance(3601)
        assert await scenario.bus.storage.purge() > 0  # type: ignore[union-attr]
        assert await store.list_sagas() == []


async def test_declared_timeouts_show_on_the_map_and_an_undeclared_one_is_logged_once(caplog):
    from busline.links import build

    saga = Saga("sagas.undeclared", state=Fulfilment, key="order_id")

    @saga.starts(OrderPlaced)
    async def placed(evt: OrderPlaced, state: Fulfilment, ctx: SagaContext) -> None:
        await ctx.request_timeout(60, PaymentOverdue(order_id=evt.order_id))

    @saga.handles(PaymentOverdue)
    async def overdue(msg: PaymentOverdue, state: Fulfilment, ctx: SagaContext) -> None: ...

    async with SagaScenario(saga) as scenario:
        await scenario.handle(OrderPlaced(order_id="o-1"))
        await scenario.handle(OrderPlaced(order_id="o-2"))
    warnings = [r.getMessage() for r in caplog.records if "without declaring" in r.getMessage()]
    assert len(warnings) == 1 and "timeouts=[PaymentOverdue]" in warnings[0]

    async with SagaScenario(fulfilment_saga()) as scenario:
        [node] = [h for h in build([scenario.bus]).handlers if h.saga]
    assert node.timeouts == ("sagas.PaymentOverdue",)
