"""``busline asyncapi``: the document validates against the official AsyncAPI 3.0.0 JSON Schema
(tests/cli/data, see its README), with payload schemas from msgspec and busline's kind and owner
in ``x-busline-*`` extensions."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from busline.cli import main
from tests.cli.fixtures import shop

SCHEMA = json.loads((Path(__file__).parent / "data" / "asyncapi-3.0.0-without-id.json").read_text())
SHOP = [f"tests.cli.fixtures.shop:{name}" for name in ("checkout", "orders", "payments")]


def asyncapi(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["asyncapi", *argv]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_the_document_validates_against_the_official_schema(capsys):
    document = asyncapi(capsys, *SHOP)
    assert errors(document) == []
    assert document["asyncapi"] == "3.0.0"
    # The check is real: a wrong action or a missing channel address is refused.
    broken = copy.deepcopy(document)
    broken["operations"]["payments.charge.receive.shop.ChargePayment"]["action"] = "publish"
    assert errors(broken)
    broken = copy.deepcopy(document)
    broken["channels"]["shop.PlaceOrder"]["address"] = 42
    assert errors(broken)


def test_kind_owner_and_payloads(capsys):
    document = asyncapi(capsys, *SHOP)
    place = document["channels"]["shop.PlaceOrder"]
    assert place["x-busline-kind"] == "command" and place["x-busline-owner"] == "orders"
    assert place["bindings"]["amqp"]["is"] == "queue"
    captured = document["channels"]["shop.PaymentCaptured"]
    assert captured["x-busline-kind"] == "event" and captured["x-busline-owner"] == "payments"
    assert captured["bindings"]["amqp"]["exchange"]["type"] == "fanout"
    message = document["components"]["messages"]["shop.PlaceOrder"]
    assert message["payload"] == {"$ref": "#/components/schemas/PlaceOrder"}
    _, components = msgspec.json.schema_components([shop.PlaceOrder])
    assert document["components"]["schemas"]["PlaceOrder"] == components["PlaceOrder"]
    operations = document["operations"]
    assert operations["checkout.check_out.send.shop.PlaceOrder"]["action"] == "send"
    assert operations["orders.place_order.receive.shop.PlaceOrder"]["action"] == "receive"
    saga_step = operations["orders.orders.fulfilment.receive.shop.OrderPlaced"]
    assert saga_step["x-busline-saga"] is True


def test_servers_come_from_the_buses_without_passwords(capsys):
    document = asyncapi(capsys, *SHOP)
    assert list(document["servers"].values()) == [
        {"host": "rabbit.example:5672", "pathname": "/shop", "protocol": "amqp"}
    ]
    assert "secret" not in json.dumps(document)
    document = asyncapi(capsys, "--url", "amqps://u:p@mq.example/prod", *SHOP, "--title", "Shop")
    assert list(document["servers"].values()) == [
        {"host": "mq.example", "pathname": "/prod", "protocol": "amqps"}
    ]
    assert document["info"]["title"] == "Shop" and errors(document) == []


def test_the_smells_fixture_validates_too(capsys):
    # In-process buses: no server at all, and messages nobody handles or sends.
    document = asyncapi(
        capsys, "tests.cli.fixtures.smells:sales", "tests.cli.fixtures.smells:stock"
    )
    assert "servers" not in document and errors(document) == []
