"""The README's main job: the sample shop ships every order, on the embedded transport."""

from __future__ import annotations

from busline.testing import memory_url
from sample_app.__main__ import main, run_shop


async def test_every_order_is_shipped_with_its_correlation_id():
    shipped = await run_shop(memory_url(), orders=7, quiet=True)
    assert shipped == {f"order-{n}": f"order-{n}" for n in range(1, 8)}


def test_main_exits_zero_when_all_orders_ship(capsys):
    assert main(["--orders", "3", "--quiet", "--url", memory_url()]) == 0
    assert "3/3 orders shipped" in capsys.readouterr().out
