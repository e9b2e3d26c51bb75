"""The README's main job: the sample shop ships every order, on the embedded defaults (the
in-process transport and a SQLite store per service), and applies each order exactly once."""

from __future__ import annotations

import pytest

from busline.testing import memory_url
from sample_app.__main__ import main, run_shop


async def test_every_order_is_shipped_once_with_its_correlation_id(tmp_path):
    run = await run_shop(memory_url(), orders=7, data_dir=tmp_path, quiet=True)
    assert run.shipped == {f"order-{n}": f"order-{n}" for n in range(1, 8)}
    # order-1 was submitted twice with one idempotency key; two charges failed after writing
    # their payment row. Every table still holds each order once.
    assert run.place_orders_sent == 8
    assert run.rows == {"checkouts": 7, "orders": 7, "payments": 7, "shipments": 7}
    assert run.outbox_pending == 0


def test_main_exits_zero_when_all_orders_ship(capsys):
    assert main(["--orders", "3", "--quiet", "--url", memory_url()]) == 0
    out = capsys.readouterr().out
    assert "3/3 orders shipped" in out
    assert "each order exactly once: True" in out


def test_main_refuses_a_data_dir_with_an_earlier_run_in_it(tmp_path, capsys):
    (tmp_path / "orders.db").write_bytes(b"")
    with pytest.raises(SystemExit) as exit_:
        main(["--orders", "1", "--data-dir", str(tmp_path), "--url", memory_url()])
    assert exit_.value.code == 2
    assert "is not empty" in capsys.readouterr().err
