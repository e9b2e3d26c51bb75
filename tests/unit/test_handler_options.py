"""Handler options are declared by the middleware that reads them: a misspelt or unknown option,
or a value its middleware refuses, is an error when the handler is declared."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from busline import Bus, Command, Context, Event, Middleware, RegistrationError, RetryPolicy
from busline.middleware import OptionCheck


class Pay(Command, wire_name="options.Pay"):
    amount: float


def test_an_unknown_option_names_the_valid_ones():
    bus = Bus("svc")
    with pytest.raises(RegistrationError) as raised:

        @bus.command_handler(Pay, retires=RetryPolicy())
        async def pay(cmd: Pay) -> None: ...

    message = str(raised.value)
    assert "retires" in message
    assert "retry" in message and "trace_as" in message and "prefetch" in message


def test_a_misspelt_tracing_option_is_refused_even_with_tracing_off():
    bus = Bus("svc", tracing=False)
    with pytest.raises(RegistrationError, match="trace_ass"):

        @bus.command_handler(Pay, trace_ass="link")
        async def pay(cmd: Pay) -> None: ...


@pytest.mark.parametrize(
    ("options", "complaint"),
    [({"retry": 3}, "RetryPolicy"), ({"trace_as": "sibling"}, "'child' or 'link'")],
)
def test_a_known_option_with_a_bad_value_is_refused(options: dict[str, Any], complaint: str):
    bus = Bus("svc")
    with pytest.raises(RegistrationError, match=complaint):
        bus.command_handler(Pay, **options)


class Priority(Middleware):
    """A user middleware that reads its own per-handler option."""

    handler_options: ClassVar[Mapping[str, OptionCheck]] = {
        "priority": lambda value: None if value in ("low", "high") else "priority: low or high"
    }


def test_middleware_declares_the_options_it_reads():
    bus = Bus("svc", middleware=[Priority()])

    @bus.command_handler(Pay, priority="high", retry=RetryPolicy(immediate=1))
    async def pay(cmd: Pay) -> None: ...

    [spec] = bus.registry.specs
    assert spec.options == {"priority": "high", "retry": RetryPolicy(immediate=1)}
    with pytest.raises(RegistrationError, match="low or high"):
        Bus("other", middleware=[Priority()]).command_handler(Pay, priority="urgent")
    with pytest.raises(RegistrationError, match="priority"):
        Bus("plain").command_handler(Pay, priority="high")


class Paid(Event, wire_name="options.Paid"):
    amount: float


async def test_declared_links_are_kept_and_an_undeclared_send_is_logged_once(caplog):
    from busline.testing import join, memory_url

    bus = Bus("svc", memory_url())

    @bus.command_handler(Pay, publishes=[Paid])
    async def pay(cmd: Pay, ctx: Context) -> None:
        await ctx.publish(Paid(amount=cmd.amount))
        if cmd.amount > 0:
            await ctx.send(Pay(amount=0.0))

    [spec] = bus.registry.specs
    assert (spec.sends, spec.publishes) == ((), (Paid,))
    async with bus:
        await bus.send(Pay(amount=1.0))
        await bus.send(Pay(amount=2.0))
        await join(bus)
    undeclared = [r.getMessage() for r in caplog.records if r.getMessage().startswith("pay ")]
    assert undeclared == [
        "pay sends options.Pay without declaring it: add sends=[Pay] to its declaration so that "
        "'busline map' shows the link"
    ]


def test_links_must_be_of_the_right_kind():
    with pytest.raises(RegistrationError, match="sends= lists commands; Paid is not one"):
        Bus("svc").command_handler(Pay, sends=[Paid])


async def test_a_service_declares_what_it_sends_outside_handlers(caplog):
    from busline.links import build
    from busline.testing import memory_url

    bus = Bus("web", memory_url(), publishes=[Paid])

    @bus.command_handler
    async def pay(cmd: Pay) -> None: ...

    async with bus:
        await bus.publish(Paid(amount=1.0))  # declared: no warning
        await bus.send(Pay(amount=1.0))  # not declared: one warning
        await bus.send(Pay(amount=2.0))
    undeclared = [r.getMessage() for r in caplog.records if "without declaring" in r.getMessage()]
    assert undeclared == [
        "service 'web' sends options.Pay without declaring it: add sends=[Pay] to its "
        "declaration so that 'busline map' shows the link"
    ]
    links = build([bus]).links()
    assert [(link.sender, link.message) for link in links if link.message == "options.Paid"] == [
        ("web/bus", "options.Paid")
    ]
    with pytest.raises(RegistrationError, match="publishes= lists events"):
        Bus("web", publishes=[Pay])
