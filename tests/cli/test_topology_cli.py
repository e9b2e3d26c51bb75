"""``busline topology``: the table of what the shop needs, and ``--declare`` creating exactly
that on a real broker (checked with a plain client)."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from busline.cli import main

SHOP = [f"tests.cli.fixtures.shop:{name}" for name in ("checkout", "orders", "payments")]


def rows(out: str) -> dict[tuple[str, str], list[str]]:
    table = [line.split() for line in out.splitlines()]
    assert table[0] == ["KIND", "NAME", "USED", "BY", "ARGUMENTS"]
    found = {}
    for row in table[1:]:
        if row[0] == "binding":  # "queue -> exchange" is three words
            found[(row[0], " ".join(row[1:4]))] = row[4:]
        else:
            found[(row[0], row[1])] = row[2:]
    return found


def test_the_table_lists_what_the_buses_declare(capsys):
    assert main(["topology", *SHOP]) == 0
    table = rows(capsys.readouterr().out)
    assert table[("queue", "shop.PlaceOrder")] == ["checkout,orders", "x-queue-type='quorum'"]
    assert table[("exchange", "shop.OrderPlaced")] == ["orders", "fanout", "durable"]
    assert ("binding", "orders.orders.fulfilment.placed -> shop.OrderPlaced") in table
    assert table[("queue", "busline.error")][0] == "checkout,orders,payments"
    delay = table[("queue", "busline.delay.10000")]
    assert "x-message-ttl=10000" in delay and "x-dead-letter-exchange=''" in delay
    assert ("binding", "busline.delay.10000 -> busline.delay.10000") in table
    kinds = [kind for kind, _ in table]
    assert kinds == sorted(kinds, key=["exchange", "queue", "binding"].index)


def test_declare_needs_a_url(capsys, monkeypatch):
    monkeypatch.delenv("BUSLINE_URL", raising=False)
    assert main(["topology", *SHOP, "--declare"]) == 2
    assert "--declare needs --url" in capsys.readouterr().err


async def test_declare_creates_everything_on_the_broker(amqp_url, capsys):
    argv = ["topology", SHOP[1], "--declare", "--url", amqp_url]
    assert await asyncio.to_thread(main, argv) == 0
    out, err = capsys.readouterr()
    assert "declared" in err and "guest:***@" in err
    table = rows(out)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for kind, name in table:
            if kind == "queue":
                await channel.declare_queue(name, passive=True)
            elif kind == "exchange":
                await channel.declare_exchange(name, passive=True)
        # The binding routes: a message published to the event's exchange lands in the queue.
        exchange = await channel.get_exchange("shop.OrderPlaced")
        await exchange.publish(aio_pika.Message(b"{}"), routing_key="")
        queue = await channel.declare_queue("orders.orders.fulfilment.placed", passive=True)
        assert await queue.get(timeout=5, fail=False) is not None
    # Again: declaring is idempotent.
    assert await asyncio.to_thread(main, argv) == 0


@pytest.mark.parametrize("url", ["amqp://guest:hunter2@127.0.0.1:1/"])
def test_declare_on_an_unreachable_broker_is_one_masked_line(capsys, url):
    assert main(["topology", SHOP[2], "--declare", "--url", url, "--timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "hunter2" not in err and "guest:***@" in err
