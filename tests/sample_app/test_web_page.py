"""The shop's page in a real headless browser (Debian's chromium, driven by Playwright): place
an order through the form and watch it reach "fulfilled" without reloading; a declined card
shows the cancellation and its reason."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from busline.testing import memory_url
from sample_app.shop import Shop
from sample_app.web import WebServer
from tests.sample_app.support import shop_config

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "sample-shop.png"


@pytest.fixture
def chromium() -> str:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} missing: scripts/bootstrap.sh installs it (apt-get, as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


async def test_an_order_placed_in_the_page_reaches_its_final_state_live(tmp_path, chromium):
    from playwright.async_api import async_playwright, expect

    shop = Shop(shop_config(memory_url("web"), str(tmp_path)))
    await shop.start()
    web = WebServer(shop.checkout)
    await web.start()
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=ARGS)
            page = await browser.new_page(viewport={"width": 1100, "height": 520})
            await page.goto(web.url + "/")
            form = page.locator("#order-form")

            await form.locator("input[name=customer]").fill("grace")
            await form.locator("#place").click()
            grace = page.locator("tr", has_text="grace")
            await expect(grace.locator(".status")).to_have_text("fulfilled", timeout=15_000)
            await expect(grace.locator(".history")).to_contain_text("placed")

            await form.locator("input[name=customer]").fill("alan")
            await form.locator("select[name=card]").select_option("4000 0000 0000 0002")
            await form.locator("#place").click()
            alan = page.locator("tr", has_text="alan")
            await expect(alan.locator(".status")).to_have_text("cancelled", timeout=15_000)
            await expect(alan.locator(".reason")).to_have_text("payment declined")

            shot = tmp_path / "sample-shop.png"
            await page.screenshot(path=str(shot), full_page=True)
            await browser.close()
    finally:
        await web.stop()
        await shop.stop()
    assert shot.stat().st_size > 10_000
    # The README's picture: refreshed on request, or made when missing.
    if os.environ.get("BUSLINE_UPDATE_SCREENSHOT") or not SCREENSHOT.exists():
        shutil.copyfile(shot, SCREENSHOT)
