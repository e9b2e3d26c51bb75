"""Semantics are enforced when handlers are declared, with errors that say what to do."""

from __future__ import annotations

import pytest

from busline import Bus, Command, Context, Event, RegistrationError, RetryPolicy


class Pay(Command, wire_name="unit.Pay"):
    amount: float


class Paid(Event, wire_name="unit.Paid"):
    amount: float


def test_type_comes_from_annotation_or_argument():
    bus = Bus("svc")

    @bus.command_handler
    async def pay(cmd: Pay, ctx: Context) -> None: ...

    @bus.event_subscriber(Paid, name="audit", prefetch=4)
    async def audit(evt, ctx) -> None: ...

    specs = {spec.name: spec for spec in bus.registry.specs}
    assert specs["pay"].message_type is Pay and specs["pay"].queue == "unit.Pay"
    assert specs["audit"].message_type is Paid and specs["audit"].queue == "svc.audit"
    assert specs["audit"].prefetch == 4


def test_second_handler_for_a_command_is_refused():
    bus = Bus("svc")

    @bus.command_handler
    async def pay(cmd: Pay) -> None: ...

    with pytest.raises(RegistrationError, match="exactly one handler"):

        @bus.command_handler
        async def pay_again(cmd: Pay) -> None: ...


def test_unannotated_or_non_message_parameter_is_refused():
    bus = Bus("svc")
    with pytest.raises(TypeError, match="annotate"):

        @bus.command_handler
        async def no_annotation(cmd) -> None: ...

    with pytest.raises(TypeError, match="not a Command subclass"):

        @bus.command_handler
        async def wrong(cmd: int) -> None: ...


def test_kind_mismatch_names_the_right_decorator():
    bus = Bus("svc")
    with pytest.raises(RegistrationError, match="event_subscriber"):

        @bus.command_handler
        async def handles_event(evt: Paid) -> None: ...

    with pytest.raises(RegistrationError, match="command_handler"):

        @bus.event_subscriber
        async def subscribes_command(cmd: Pay) -> None: ...


def test_sync_functions_and_bad_signatures_are_refused():
    bus = Bus("svc")
    with pytest.raises(RegistrationError, match="async def"):
        bus.command_handler(Pay)(lambda cmd: None)
    with pytest.raises(RegistrationError, match=r"\(message\) or \(message, ctx\)"):

        @bus.command_handler
        async def too_many(cmd: Pay, ctx: Context, extra: int) -> None: ...


def test_duplicate_subscriber_names_and_wire_names_are_refused():
    bus = Bus("svc")

    @bus.event_subscriber
    async def on_paid(evt: Paid) -> None: ...

    with pytest.raises(RegistrationError, match="another name"):
        bus.event_subscriber(Paid, name="on_paid")(on_paid)

    @bus.command_handler
    async def pay(cmd: Pay) -> None: ...

    class Impostor(Command, wire_name="unit.Pay"):
        amount: float

    async def other(cmd: Impostor) -> None: ...

    with pytest.raises(RegistrationError, match=r"wire name 'unit\.Pay'"):
        bus.command_handler(Impostor)(other)


def test_retry_option_must_be_a_policy():
    bus = Bus("svc")
    with pytest.raises(RegistrationError, match="RetryPolicy"):
        bus.command_handler(Pay, retry=3)
    bus.command_handler(Pay, retry=RetryPolicy(immediate=1, delays=()))  # accepted


def test_wire_name_defaults_to_class_name_and_is_not_inherited():
    class Base(Command, wire_name="unit.Base"):
        x: int

    class Derived(Base):
        y: int

    assert Base.__wire_name__ == "unit.Base"
    assert Derived.__wire_name__ == "Derived"
    with pytest.raises(TypeError, match="non-empty"):

        class Blank(Command, wire_name=" "):
            pass
