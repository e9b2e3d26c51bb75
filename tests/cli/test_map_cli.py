"""``busline map``: every link of the fixture shop, with the right direction and the saga as the
owner of its process, in JSON (compared exactly), Mermaid and DOT; targets and options in any
order; the sample app's services when they can be named as MODULE:ATTR."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from busline.cli import main

DATA = Path(__file__).parent / "data"
SHOP = [f"tests.cli.fixtures.shop:{name}" for name in ("checkout", "orders", "payments")]


def busline(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_the_json_map_of_the_shop_is_exactly_the_expected_one(capsys):
    status, out, err = busline(capsys, "map", "--format", "json", *SHOP)
    assert (status, err) == (0, "")
    assert out == (DATA / "shop-map.json").read_text()


def test_links_point_the_way_the_coupling_goes(capsys):
    _, out, _ = busline(capsys, "map", *SHOP, "--format", "json")
    links = {(link["from"], link["message"], link["to"]): link for link in json.loads(out)["links"]}
    command = links[("checkout/check_out", "shop.PlaceOrder", "orders/place_order")]
    assert (command["kind"], command["depends"]) == ("command", "sender depends on receiver")
    event = links[("payments/charge", "shop.PaymentCaptured", "orders/orders.fulfilment")]
    assert (event["kind"], event["depends"]) == ("event", "receiver depends on sender")
    saga = "orders/orders.fulfilment"
    assert links[(saga, "shop.ChargePayment", "payments/charge")]["kind"] == "command"
    assert links[(saga, "shop.PaymentOverdue", saga)]["timeout"] is True
    (owner,) = [h for h in json.loads(out)["handlers"] if h["role"] == "saga"]
    assert owner["starts"] == ["shop.OrderPlaced"]
    assert owner["timeouts"] == ["shop.PaymentOverdue"]
    # Saga steps are the saga: none of them appears as a handler of its own.
    assert not any(".placed" in h["node"] for h in json.loads(out)["handlers"])


def test_mermaid_draws_commands_solid_and_events_dashed(capsys):
    status, out, _ = busline(capsys, "map", *SHOP)
    assert status == 0 and out.startswith("flowchart LR\n")
    ids = {}
    for line in out.splitlines():
        for marker in ('["', '{{"', '[/"', '(["'):
            if marker in line and "subgraph" not in line:
                node, _, label = line.strip().partition(marker)
                ids[label.strip('"]}/)')] = node
    check_out, place = ids["check_out"], ids["command shop.PlaceOrder"]
    assert f"  {check_out} --> {place}" in out.splitlines()
    assert f"  {place} --> {ids['place_order']}" in out.splitlines()
    saga, placed = ids["saga orders.fulfilment"], ids["event shop.OrderPlaced"]
    assert f"  {ids['place_order']} -.-> {placed}" in out.splitlines()
    assert f"  {placed} -.->|starts| {saga}" in out.splitlines()
    assert f"  {saga} -->|timeout| {ids['command shop.PaymentOverdue']}" in out.splitlines()


def test_dot_output(capsys):
    status, out, _ = busline(capsys, "map", "--format", "dot", *SHOP)
    assert status == 0 and out.startswith("digraph busline {")
    assert '"checkout/check_out" -> "shop.PlaceOrder";' in out
    assert '"orders/place_order" -> "shop.OrderPlaced" [style=dashed];' in out
    assert '"shop.OrderPlaced" -> "orders/orders.fulfilment" [style=dashed, label="starts"];' in out
    assert '"orders/orders.fulfilment" [label="saga orders.fulfilment", shape=hexagon];' in out


def test_options_and_targets_in_any_order(capsys):
    expected = (DATA / "shop-map.json").read_text()
    for argv in (
        ["map", SHOP[0], "--format", "json", SHOP[1], SHOP[2]],
        ["map", *SHOP[:2], "--format=json", SHOP[2]],
        ["map", "--format", "json", *SHOP],
    ):
        assert busline(capsys, *argv)[:2] == (0, expected), argv


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("tests.cli.fixtures.shop", "is not MODULE:ATTR"),
        ("tests.cli.fixtures.nosuch:bus", "cannot import 'tests.cli.fixtures.nosuch'"),
        ("tests.cli.fixtures.shop:nosuch", "has no attribute 'nosuch'"),
        ("tests.cli.fixtures.shop:URL", "is a str, not a Bus"),
    ],
)
def test_a_target_that_names_no_bus_is_a_usage_error(capsys, target, message):
    for command in ("map", "lint", "asyncapi", "topology", "run"):
        status, out, err = busline(capsys, command, target)
        assert status == 2 and out == ""
        assert len(err.splitlines()) == 1 and message in err, err
        assert "secret" not in err


def test_the_same_service_twice_is_refused(capsys):
    status, _, err = busline(capsys, "map", SHOP[0], SHOP[0])
    assert status == 2 and "both service 'checkout'" in err


def test_an_unknown_option_is_still_refused(capsys):
    status, _, err = busline(capsys, "map", *SHOP, "--nosuch")
    assert status == 2 and "unrecognized arguments: --nosuch" in err


#: The sample app's services as MODULE:ATTR, once it exposes its buses that way.
SAMPLE_APP = [
    "sample_app.checkout:bus",
    "sample_app.fulfilment:bus",
    "sample_app.payment:bus",
    "sample_app.inventory:bus",
    "sample_app.shipping:bus",
    "sample_app.loyalty:bus",
    "sample_app.notification:bus",
]


def _sample_app_buses() -> list[str]:
    """The sample app's targets, or skip (with the reason) while it does not expose them."""
    from busline import Bus

    for target in SAMPLE_APP:
        module_name, _, attribute = target.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attribute, None)
        except Exception as exc:
            pytest.skip(f"sample_app not importable as MODULE:ATTR yet ({target}: {exc})")
        if not isinstance(found, Bus) and not callable(found):
            pytest.skip(f"sample_app does not expose a bus as {target} yet")
    return SAMPLE_APP


def test_map_and_lint_of_the_sample_app(capsys):
    targets = _sample_app_buses()
    status, out, err = busline(capsys, "map", "--format", "json", *targets)
    assert status == 0, err
    document = json.loads(out)
    sagas = [h for h in document["handlers"] if h["role"] == "saga"]
    assert sagas and all(saga["starts"] and saga["timeouts"] for saga in sagas)
    assert all(link["to"] is not None for link in document["links"] if link["kind"] == "command")
    status, out, err = busline(capsys, "lint", *targets, "--ignore", "unsubscribed-event")
    assert (status, out) == (0, ""), out


def test_the_map_in_the_docs_is_the_real_output(capsys):
    docs = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    shown = docs.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert busline(capsys, "map", *SHOP)[1] == shown
