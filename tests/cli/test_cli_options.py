"""The ``busline`` command's conventions: options anywhere, environment defaults, one-line errors
with exit 2 (usage) or 1 (failure), passwords never shown, ``--version``, guarded purge."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from busline import Bus, Context, Reject, RetryPolicy
from busline.cli import main
from busline.errorqueue import open_error_queue
from busline.testing import memory_url
from tests.contract.messages import PlaceOrder
from tests.support import eventually

SECRET_URL = "amqp://admin:hunter2@broker.example:5672/"


async def park(url: str, count: int) -> list[str]:
    """Leave ``count`` rejected messages in the error queue of the broker at ``url``."""
    bus = Bus("orders", url, retry=RetryPolicy(immediate=0, delays=()))

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        raise Reject("malformed")

    async with bus:
        ids = [await bus.send(PlaceOrder(order_id=f"o-{n}", amount=1.0)) for n in range(count)]
        errors = await open_error_queue(url)
        try:

            async def all_parked() -> bool:
                return len(await errors.browse()) == count

            await eventually(all_parked, what=f"{count} parked")
        finally:
            await errors.close()
    return ids


async def cli(*argv: str, stdin=None) -> int:
    # A thread: the command runs its own event loop, as from a shell. The in-process broker is
    # shared, and this test's loop does nothing meanwhile.
    return await asyncio.to_thread(main, list(argv), stdin=stdin)


async def parked_ids(url: str) -> list[str]:
    errors = await open_error_queue(url)
    try:
        return [m.message_id for m in await errors.browse()]
    finally:
        await errors.close()


def run_module(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "busline", *argv],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


async def test_url_and_error_queue_go_before_or_after_the_action(capsys):
    url = memory_url()
    ids = await park(url, 2)
    assert await cli("errors", "--url", url, "list") == 0
    before = capsys.readouterr()
    assert await cli("errors", "list", "--url", url, "--error-queue", "busline.error") == 0
    after = capsys.readouterr()
    assert before.out == after.out
    assert sorted(line.split()[0] for line in after.out.splitlines()) == sorted(ids)
    assert "2 message(s)" in after.err

    assert await cli("errors", "--url", url, "list", "--error-queue", "elsewhere") == 0
    assert capsys.readouterr().out == ""  # the later --error-queue was used
    assert await cli("errors", "show", ids[0], "--url", url) == 0
    assert f"message id:     {ids[0]}" in capsys.readouterr().out


def test_url_and_store_default_to_the_environment(tmp_path):
    env = {**os.environ, "BUSLINE_URL": memory_url(), "BUSLINE_STORE": f"sqlite:///{tmp_path}/x.db"}
    listed = run_module("errors", "list", env=env)
    assert listed.returncode == 0 and listed.stderr.strip() == "0 message(s)"
    outbox = run_module("outbox", env=env)
    assert outbox.returncode == 2 and "cannot open" in outbox.stderr  # it used that store
    assert not (tmp_path / "x.db").exists()

    bare = {k: v for k, v in os.environ.items() if k not in ("BUSLINE_URL", "BUSLINE_STORE")}
    assert "BUSLINE_STORE" in run_module("outbox", env=bare).stderr


def test_version_and_python_dash_m_busline(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == "busline 0.1.0"
    result = run_module("--version")
    assert result.returncode == 0 and result.stdout.strip() == "busline 0.1.0"


def test_usage_errors_are_one_masked_line_with_status_2(capsys):
    for argv in (
        ["outbox", "--store", "sqlite:///x.db", SECRET_URL],  # unrecognized argument
        ["errors", SECRET_URL],  # invalid action
        ["errors", "list", "--url"],  # missing value
        ["nosuch"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1, err
        assert err.startswith("busline") and "hunter2" not in err
    assert main(["errors", "--url", "x", SECRET_URL]) == 2
    assert "amqp://admin:***@broker.example:5672/" in capsys.readouterr().err


async def test_failures_are_one_masked_line_with_status_1(capsys):
    assert await cli("errors", "list", "--url", "nosuch://admin:hunter2@host/") == 1
    err = capsys.readouterr().err
    assert err == (
        "busline errors: no error-queue support for URL 'nosuch://admin:***@host/'; "
        "known schemes: amqp://, amqps://, memory://\n"
    )
    unreachable = "amqp://guest:hunter2@127.0.0.1:1/"
    assert await cli("errors", "list", "--url", unreachable) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "hunter2" not in err and "guest:***@" in err
    assert await cli("errors", "replay", "--url", memory_url()) == 2
    assert "give message ids or --all" in capsys.readouterr().err


async def test_purge_without_a_terminal_refuses_unless_yes(capsys):
    url = memory_url()
    ids = await park(url, 2)
    assert await cli("errors", "purge", "--url", url) == 2
    assert "pass --yes" in capsys.readouterr().err
    assert sorted(await parked_ids(url)) == sorted(ids)

    # As a process with no terminal on stdin: it answers at once instead of waiting for input.
    env = {**os.environ, "BUSLINE_URL": url}
    assert run_module("errors", "purge", env=env).returncode == 2

    assert await cli("errors", "purge", "--url", url, "--yes") == 0
    assert capsys.readouterr().out == "2 message(s) purged\n"
    assert await parked_ids(url) == []


async def test_purge_on_a_terminal_asks_first(capsys):
    url = memory_url()
    ids = await park(url, 1)
    leader, follower = os.openpty()
    with os.fdopen(follower, encoding="utf-8") as terminal:
        os.write(leader, b"n\n")
        assert await cli("errors", "purge", "--url", url, stdin=terminal) == 1
        err = capsys.readouterr().err
        assert f"delete 1 parked message(s) from busline.error at {url}? [y/N]" in err
        assert "nothing purged" in err
        assert await parked_ids(url) == ids

        os.write(leader, b"y\n")
        assert await cli("errors", "purge", "--url", url, stdin=terminal) == 0
        assert capsys.readouterr().out == "1 message(s) purged\n"
    os.close(leader)
    assert await parked_ids(url) == []
