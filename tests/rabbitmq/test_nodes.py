"""Several broker addresses: the bus connects to the first node that answers."""

from __future__ import annotations

import asyncio
import logging

from busline import Bus, Command

SECRET = "n0de-Pa55"


class Hello(Command, wire_name="nodes.Hello"):
    n: int


async def test_the_first_node_that_answers_is_used(amqp_url, caplog):
    caplog.set_level(logging.INFO, logger="busline")
    # Port 1 on loopback refuses at once: the bus moves on to the node that answers.
    unreachable = f"amqp://app:{SECRET}@127.0.0.1:1/x"
    bus = Bus("nodes", [unreachable, amqp_url], send_timeout=10.0, sends=[Hello])
    got = asyncio.Event()

    @bus.command_handler
    async def hello(cmd: Hello) -> None:
        got.set()

    async with bus:
        await bus.send(Hello(n=1))
        await asyncio.wait_for(got.wait(), 10)
    assert "trying the next" in caplog.text
    assert SECRET not in caplog.text and SECRET not in repr(bus)


def test_a_stall_is_noticed_within_the_documented_bound_by_default():
    import pytest
    from busline.transports.rabbitmq.config import ConnectionConfig

    config = ConnectionConfig("amqp://a:b@h1/v,amqp://a:b@h2/v", "svc", {})
    assert config.urls == ("amqp://a:b@h1/v", "amqp://a:b@h2/v")
    assert (config.heartbeat, config.stall_timeout) == (10, 15.0)
    with pytest.raises(ValueError, match="at least the heartbeat"):
        ConnectionConfig("amqp://h/v", "svc", {"heartbeat": 30, "stall_timeout": 15})
