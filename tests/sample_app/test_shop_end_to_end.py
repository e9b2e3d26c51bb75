"""The whole shop, end to end over HTTP, on memory + SQLite and on RabbitMQ + PostgreSQL: every
order ends, what was done for a cancelled order is undone, a duplicate never charges twice, and
the summary says what the databases hold (counted here by business key, with our own queries)."""

from __future__ import annotations

import io

from rich.console import Console

from sample_app.driver import run_shop
from sample_app.summary import summary_table
from tests.sample_app.support import Counting, by_order, rows, shop_config

ORDERS = 40


async def test_every_order_ends_and_is_accounted_for_under_faults(where, dropped):
    broker, store = where
    config = shop_config(
        broker, store, decline_rate=0.2, shortage_rate=0.1, duplicate_rate=0.3,
        crash={"payment": 0.3, "fulfilment": 0.1, "checkout": 0.1},
    )  # fmt: skip
    dropped.append(config)
    out = io.StringIO()
    with Counting(config):
        result = await run_shop(config, ORDERS, Console(file=out, width=120))

    orders = await by_order(config, "checkout", "SELECT order_id, status, reason FROM orders")
    charges = await by_order(config, "payment", "SELECT order_id, status, amount FROM charges")
    refunds = await by_order(config, "payment", "SELECT order_id, amount FROM refunds")
    reserved = await by_order(config, "inventory", "SELECT order_id, status FROM reservations")
    releases = await by_order(config, "inventory", "SELECT order_id, quantity FROM releases")
    shipped = await by_order(config, "shipping", "SELECT order_id FROM shipments")
    points = await by_order(config, "loyalty", "SELECT order_id FROM points")

    # Every order reached a final state, and the faults made both kinds happen.
    assert len(orders) == ORDERS
    statuses = {status for status, _ in orders.values()}
    assert statuses == {"fulfilled", "cancelled"}, statuses
    fulfilled = {o for o, (status, _) in orders.items() if status == "fulfilled"}
    cancelled = {o: reason for o, (status, reason) in orders.items() if status == "cancelled"}
    declined = {o for o, reason in cancelled.items() if reason == "payment declined"}
    assert declined and "out of stock" in cancelled.values()

    # A fulfilled order: charged once, shipped once, points once, nothing undone.
    for order in fulfilled:
        assert charges[order][0] == "charged" and order in shipped and order in points
        assert order not in refunds and order not in releases
    # A cancelled order: refunded (money back if charged) and its stock released.
    for order in cancelled:
        assert order in refunds and order in releases and order not in shipped
        assert reserved[order][0] in ("released", "short", "void")
        charged_before = charges[order][0] == "refunded"
        assert refunds[order][0] == (charges[order][1] if charged_before else 0)
    for order in declined:
        assert charges[order][0] == "declined" and refunds[order] == (0,)
        assert reserved[order][0] in ("released", "short", "void")
    # Duplicates were injected and absorbed, and no order was charged twice: one charge row
    # per order (by_order checks it) and money taken only for the orders that kept it.
    assert config.tally.duplicates_sent > 0
    assert config.tally.duplicates_absorbed >= config.tally.duplicates_sent
    assert config.tally.retries > 0 and config.tally.parked == 0
    kept = [o for o, (status, _) in charges.items() if status == "charged"]
    assert sorted(kept) == sorted(fulfilled)

    # The summary says what the databases hold.
    effects = result.effects
    assert effects.statuses["fulfilled"] == len(fulfilled)
    assert sum(effects.reasons.values()) == len(cancelled)
    assert effects.figures["refunds"] + effects.figures["releases"] == 2 * len(cancelled)
    assert effects.figures["shipped"] == len(shipped)
    assert effects.figures["charged_twice"] == 0
    mails = await rows(config, "notification", "SELECT COUNT(*) FROM notifications")
    assert effects.figures["mails"] == mails[0][0] == 2 * ORDERS
    text = io.StringIO()
    Console(file=text, width=200).print(summary_table(effects, result.figures, config))
    shown = {
        cells[0]: cells[1]
        for line in text.getvalue().splitlines()
        if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) >= 2
    }
    assert shown["fulfilled"] == str(len(fulfilled))
    assert shown["compensations run"] == str(2 * len(cancelled))
    assert shown["charged twice"] == "0"
    for reason in set(cancelled.values()):
        assert shown[f"cancelled: {reason}"] == str(list(cancelled.values()).count(reason))
