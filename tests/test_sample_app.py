"""The README's first command: ``python -m sample_app`` runs the shop and prints its summary;
bad arguments are one clear line. (End-to-end and browser tests: tests/sample_app/.)"""

from __future__ import annotations

import importlib
import re

import pytest

from busline.testing import memory_url
from sample_app.cli import main
from sample_app.storage import SERVICES, fetch


def test_a_small_run_prints_the_summary_and_exits_zero(capsys):
    assert main(["--orders", "6", "--broker", memory_url("cli"), "--decline-rate", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "sample shop: summary" in out
    for row in ("orders placed", "fulfilled", "compensations run", "retries",
                "duplicates absorbed", "messages parked", "time taken", "orders/s"):  # fmt: skip
        assert row in out
    assert "shop." not in out  # no per-message lines without --verbose


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--orders", "-1"], "--orders: -1 is negative"),
        (["--broker", "kafka://me:secret@host/"], "unknown scheme"),
        (["--store", "mysql://me:secret@db/shop"], "unknown scheme"),
        (["--decline-rate", "1.5"], "not a probability"),
        (["--slow", "nobody=1"], "SERVICE=SECONDS"),
    ],
)
def test_a_bad_argument_is_one_clear_line(capsys, argv, says):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err
    assert "secret" not in err


@pytest.mark.parametrize(
    "service", [s for s in SERVICES if s != "fulfilment"]
)  # its saga's tables are busline's
async def test_a_service_started_alone_creates_its_tables(service, tmp_path, monkeypatch):
    # As `busline run sample_app.<service>:bus` starts it: from the environment, no shop around.
    monkeypatch.setenv("SHOP_STORE", str(tmp_path))
    monkeypatch.setenv("SHOP_BROKER", memory_url(f"alone-{service}"))
    module = importlib.import_module(f"sample_app.{service}")
    tables = {re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", s)[0] for s in module.TABLES}
    bus = module.bus()
    async with bus, bus.transaction() as tx:
        found = await fetch(tx.db, "SELECT name FROM sqlite_master WHERE type = 'table'")
    assert tables and tables <= {name for (name,) in found}
