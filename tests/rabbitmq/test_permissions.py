"""The RabbitMQ permissions docs/security.md gives a sender and a consumer are enough, and no
more than needed: a service runs under exactly them, retries and the error queue included."""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from busline import Bus, Command, Context, Event, PublishError, RetryPolicy
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.rabbitmq


class PlaceOrder(Command, wire_name="perm.PlaceOrder"):
    order_id: str


class PaymentCaptured(Event, wire_name="perm.PaymentCaptured"):
    order_id: str


class OrderPlaced(Event, wire_name="perm.OrderPlaced"):
    order_id: str


class Elsewhere(Command, wire_name="other.Thing"):
    order_id: str


def alternatives(*names: str) -> str:
    return "|".join(re.escape(name) for name in names)


#: The regexes of docs/security.md, filled in for this test's services.
ORDERS = {  # consumes PlaceOrder and PaymentCaptured, publishes OrderPlaced
    "configure": rf"^({alternatives('perm.PlaceOrder', 'perm.PaymentCaptured', 'perm.OrderPlaced')}"
    r"|orders\..*|busline\.error|busline\.delay\..*)$",
    "write": rf"^(amq\.default|{alternatives('perm.OrderPlaced')}|orders\..*|busline\.delay\..*)$",
    "read": rf"^({alternatives('perm.PlaceOrder', 'perm.PaymentCaptured')}|orders\..*"
    r"|busline\.delay\..*)$",
}
WEB = {  # only sends PlaceOrder and publishes PaymentCaptured
    "configure": rf"^({alternatives('perm.PlaceOrder', 'perm.PaymentCaptured')}|busline\.error)$",
    "write": rf"^(amq\.default|{alternatives('perm.PaymentCaptured')})$",
    "read": "^$",
}


def rabbitmqctl(*args: str) -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), "rabbitmqctl", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def as_user(url: str, permissions: dict[str, str]) -> str:
    """A user with exactly ``permissions`` on ``url``'s vhost; ``url`` rewritten to log in as it."""
    parts = urlsplit(url)
    vhost = parts.path.lstrip("/")
    user, password = f"perm-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    rabbitmqctl("add_user", user, password)
    rabbitmqctl(
        "set_permissions",
        "-p",
        vhost,
        user,
        permissions["configure"],
        permissions["write"],
        permissions["read"],
    )
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port or 5672}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def test_services_run_under_exactly_the_documented_permissions(amqp_url):
    orders = Bus(
        "orders",
        as_user(amqp_url, ORDERS),
        retry=RetryPolicy(immediate=0, delays=(0.2,)),
        send_timeout=5.0,
    )
    web = Bus("web", as_user(amqp_url, WEB), send_timeout=5.0)
    placed: list[str] = []
    captured: list[str] = []
    done = asyncio.Event()

    @orders.command_handler(publishes=[OrderPlaced])
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        if cmd.order_id == "flaky" and ctx.attempt == 1:
            raise ConnectionError("first attempt fails: a delayed retry through busline.delay")
        if cmd.order_id == "bad":
            raise ValueError("to the error queue")
        placed.append(cmd.order_id)
        await ctx.publish(OrderPlaced(order_id=cmd.order_id))

    @orders.event_subscriber
    async def on_captured(evt: PaymentCaptured) -> None:
        captured.append(evt.order_id)
        done.set()

    async with orders, web:
        for order_id in ("o-1", "flaky", "bad"):
            await web.send(PlaceOrder(order_id=order_id))
        await web.publish(PaymentCaptured(order_id="o-1"))
        await asyncio.wait_for(done.wait(), 20)
        await eventually(lambda: sorted(placed) == ["flaky", "o-1"], 20, "both orders placed")
        # Nothing beyond: the sender may not declare or use another service's queues.
        with pytest.raises(PublishError, match=r"ACCESS_REFUSED|access"):
            await web.send(Elsewhere(order_id="x"))
    assert captured == ["o-1"]
