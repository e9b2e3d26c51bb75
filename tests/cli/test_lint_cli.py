"""``busline lint``: each planted smell is found with its link, reason and suggestion; the clean
shop gives nothing; errors fail the run; ``--ignore`` silences a rule."""

from __future__ import annotations

import json

import pytest

from busline.cli import main
from busline.lint import RULES, sounds_imperative

SHOP = [f"tests.cli.fixtures.shop:{name}" for name in ("checkout", "orders", "payments")]
SMELLS = ["tests.cli.fixtures.smells:sales", "tests.cli.fixtures.smells:stock"]


def lint(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, str]]]:
    status = main(["lint", *argv, "--json"])
    return status, json.loads(capsys.readouterr().out)


def test_the_clean_shop_has_no_finding(capsys):
    assert main(["lint", *SHOP]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("", "no findings\n")


def test_every_planted_smell_is_found(capsys):
    status, findings = lint(capsys, *SMELLS)
    assert status == 1  # there are errors
    found = {(f["rule"], f["severity"], f["link"]) for f in findings}
    assert found == {
        ("command-owner", "error", "sales/pack --> ShipParcel --> ?"),
        ("command-owner", "error", "? --> RecordAudit --> sales | stock"),
        (
            "command-in-disguise",
            "warning",
            "stock/archive -.-> SendWelcomeEmail -.-> sales/welcome",
        ),
        (
            "hidden-process",
            "warning",
            "OrderSubmitted -.-> sales/reserve -.-> StockReserved -.-> stock/take_payment -.-> "
            "PaymentTaken -.-> sales/pack -.-> ParcelPacked -.-> stock/archive -.-> "
            "SendWelcomeEmail -.-> sales/welcome",
        ),
        ("saga-without-deadline", "warning", "ReviewApproved --> sales/sales.review"),
        ("command-loop", "warning", "sales/ping --> Pong --> sales/pong --> Ping --> sales/ping"),
        ("unsubscribed-event", "info", "stock/archive -.-> OrderArchived -.-> ?"),
    }
    assert {f["rule"] for f in findings} == set(RULES)
    for finding in findings:
        assert finding["reason"] and finding["suggestion"]


def test_text_output_names_link_reason_and_suggestion(capsys):
    assert main(["lint", *SMELLS]) == 1
    out, err = capsys.readouterr()
    assert "warning [command-in-disguise] stock/archive -.-> SendWelcomeEmail" in out
    assert "    why: event SendWelcomeEmail is named as an order and only sales acts on it" in out
    assert "    fix: make it a Command that sales handles and send it" in out
    assert err == "7 finding(s), 2 error(s)\n"


def test_ignore_silences_a_rule_and_only_errors_fail(capsys):
    status, findings = lint(capsys, *SMELLS, "--ignore", "command-owner")
    assert status == 0
    assert "command-owner" not in {f["rule"] for f in findings}
    status, findings = lint(
        capsys, "--ignore=command-owner", SMELLS[0], "--ignore", "hidden-process", SMELLS[1]
    )
    assert status == 0 and {f["rule"] for f in findings} == set(RULES) - {
        "command-owner",
        "hidden-process",
    }


def test_an_unknown_rule_is_a_usage_error(capsys):
    assert main(["lint", *SHOP, "--ignore", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "unknown rule nosuch" in err


def test_a_command_without_its_owner_among_the_services_given(capsys):
    # Without the payments bus, the saga's ChargePayment has no handler.
    status, findings = lint(capsys, *SHOP[:2])
    assert status == 1
    assert [(f["rule"], f["link"]) for f in findings] == [
        ("command-owner", "orders/orders.fulfilment --> shop.ChargePayment --> ?"),
    ]


@pytest.mark.parametrize(
    ("name", "imperative"),
    [
        ("SendWelcomeEmail", True),
        ("InvoiceToBeSent", True),
        ("PaymentRequested", True),
        ("ReplacementNeeded", True),
        ("CustomerNeedsNotificationEvent", True),
        ("ChargeCustomer", True),
        ("shop.ReserveStock", True),
        ("InvoiceSent", False),
        ("OrderPlaced", False),
        ("ReserveStockFailed", False),
        ("PaymentCaptured", False),
        ("ShipmentDispatched", False),
    ],
)
def test_names_that_read_as_orders(name, imperative):
    assert sounds_imperative(name) is imperative
