"""Every subcommand takes its options before, between or after its arguments: the same command
typed either way gives the same output."""

from __future__ import annotations

import asyncio

import pytest

from busline import Bus
from busline.cli import main

SHOP = [f"tests.cli.fixtures.shop:{name}" for name in ("checkout", "orders", "payments")]


def output(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def store(tmp_path) -> str:
    """A migrated SQLite store (a bus with a store creates its tables when it starts)."""
    url = f"sqlite:///{tmp_path}/store.db"

    async def create() -> None:
        async with Bus("options", "memory://", store=url):
            pass

    asyncio.run(create())
    return url


def test_options_after_the_subcommand_and_its_arguments(capsys, store):
    same = [
        (["outbox", "--json", "--store", store], ["outbox", "--store", store, "--json"]),
        (
            ["sagas", "--store", store, "--json", "list"],
            ["sagas", "list", "--json", "--store", store],
        ),
        (["map", "--format", "dot", *SHOP], ["map", *SHOP[:1], "--format", "dot", *SHOP[1:]]),
        (["lint", "--ignore", "command-owner", *SHOP], ["lint", *SHOP, "--ignore=command-owner"]),
        (["asyncapi", "--title", "T", *SHOP], ["asyncapi", *SHOP[:2], "--title", "T", SHOP[2]]),
        (["topology", "--timeout", "5", SHOP[0]], ["topology", SHOP[0], "--timeout", "5"]),
    ]
    for before, after in same:
        first = output(capsys, before)
        assert first[0] == 0, (before, first)
        assert output(capsys, after) == first, after
