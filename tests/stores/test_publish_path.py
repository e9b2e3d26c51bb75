"""One path out: a handler's messages pass the publish chain once each time they leave, and the
outbox relay re-enters the same chain with what it stored. Both stores, both transports."""

from __future__ import annotations

import asyncio

from busline import Context, Middleware, OutgoingMessage
from busline.middleware import PublishNext
from tests.stores.messages import ChargeCard, PlaceOrder


class FirstSendFails(Middleware):
    """Sees every send of ``ChargeCard``; refuses the first, as an unreachable broker would."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool, bool]] = []

    async def on_publish(self, out: OutgoingMessage, call_next: PublishNext) -> None:
        if out.destination == "stores.ChargeCard":
            self.seen.append((out.envelope.message_id, out.relayed, out.message is None))
            if len(self.seen) == 1:
                raise ConnectionError("broker unreachable")
        await call_next(out)


async def test_relayed_sends_pass_the_publish_middleware_with_their_envelope(make_store_bus):
    watcher = FirstSendFails()
    orders = make_store_bus("orders", middleware=[watcher])
    billing = make_store_bus("billing")
    charged: list[str] = []
    done = asyncio.Event()

    @orders.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        await ctx.send(ChargeCard(order_id=cmd.order_id))

    @billing.command_handler
    async def charge(cmd: ChargeCard, ctx: Context) -> None:
        charged.append(ctx.message_id)
        done.set()

    async with orders, billing:
        await orders.send(PlaceOrder(order_id="o-1"))
        await asyncio.wait_for(done.wait(), 20)

    (first_id, first_relayed, first_bare), (relay_id, relayed, bare) = watcher.seen
    # The handler's own send, after the commit: the message object is there.
    assert (first_relayed, first_bare) == (False, False)
    # The relay's send of the same stored message: envelope only, marked relayed.
    assert (relay_id, relayed, bare) == (first_id, True, True)
    assert charged == [first_id]
