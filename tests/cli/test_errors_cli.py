"""``busline errors`` against a real RabbitMQ: list, show, replay, purge, run as a subprocess."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from busline import Bus, Context, Reject, RetryPolicy
from tests.contract.messages import PlaceOrder
from tests.support import eventually

pytestmark = pytest.mark.rabbitmq


async def busline_cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BUSLINE_URL": url}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "busline.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


async def test_list_show_replay_purge(amqp_url):
    bus = Bus("orders", amqp_url, retry=RetryPolicy(immediate=0, delays=()))
    healed = False
    handled: list[str] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        if cmd.order_id == "reject":
            raise Reject("malformed order")
        if not healed:
            raise LookupError("customer missing")
        handled.append(cmd.order_id)

    async with bus:
        ids = [await bus.send(PlaceOrder(order_id=f"o-{n}", amount=1.0)) for n in range(2)]
        reject_id = await bus.send(PlaceOrder(order_id="reject", amount=1.0))

        async def three_parked() -> bool:
            listed = await busline_cli("errors", "list", url=amqp_url)
            return len(listed.stdout.splitlines()) == 3 and "3 message(s)" in listed.stderr

        await eventually(three_parked, timeout=30, what="three parked messages listed")

        only_lookup = await busline_cli(
            "errors", "list", "--exception", "LookupError", url=amqp_url
        )
        assert only_lookup.returncode == 0
        lines = only_lookup.stdout.splitlines()
        assert sorted(line.split()[0] for line in lines) == sorted(ids)
        assert all("contract.PlaceOrder" in line and "LookupError" in line for line in lines)

        shown = await busline_cli("errors", "show", reject_id, url=amqp_url)
        assert "reason:         rejected" in shown.stdout
        assert "malformed order" in shown.stdout
        assert '"order_id":"reject"' in shown.stdout

        missing = await busline_cli("errors", "replay", "no-such-id", url=amqp_url)
        assert missing.returncode == 1 and "not in the error queue" in missing.stderr

        healed = True
        replayed = await busline_cli("errors", "replay", *ids, url=amqp_url)
        assert replayed.returncode == 0, replayed.stderr
        assert "2 message(s) replayed" in replayed.stdout
        await eventually(lambda: sorted(handled) == ["o-0", "o-1"], what="replayed handled")

        purged = await busline_cli("errors", "purge", "--yes", url=amqp_url)
        assert "1 message(s) purged" in purged.stdout
        empty = await busline_cli("errors", "list", url=amqp_url)
        assert empty.stdout == "" and "0 message(s)" in empty.stderr


async def test_missing_url_is_a_clear_usage_error():
    env = {k: v for k, v in os.environ.items() if k != "BUSLINE_URL"}
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "busline.cli", "errors", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert "BUSLINE_URL" in result.stderr
