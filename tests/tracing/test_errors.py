"""Failures on the process span: the error, the retries and the dead-lettering. Every
transport (delays are virtual in memory, short and real on RabbitMQ)."""

from __future__ import annotations

from opentelemetry.trace import StatusCode

from busline import Context, MessageKind, Reject, RetryPolicy
from busline.testing import VirtualClock
from tests.support import take_from_queue
from tests.tracing.messages import ChargePayment, PlaceOrder
from tests.tracing.support import attrs, events, is_child

PROCESS = "process shop.PlaceOrder"
ERROR_QUEUE = "busline.error"


class CardDeclined(Exception):
    pass


ERROR_TYPE = f"{__name__}.CardDeclined"


async def test_failing_handler_span_shows_the_error_and_dead_letter(
    make_bus, traced, spans, bus_url
):
    bus = make_bus("checkout", retry=RetryPolicy(immediate=0, delays=()), **traced)

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        raise CardDeclined("card declined")

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1"))
        await take_from_queue(bus_url, ERROR_QUEUE, 1)
        await spans.wait_for(PROCESS)

    span = spans.one(PROCESS)
    assert span.status.status_code is StatusCode.ERROR
    assert "card declined" in (span.status.description or "")
    assert attrs(span)["error.type"] == ERROR_TYPE
    [exception] = events(span, "exception")
    assert exception["exception.type"].endswith("CardDeclined")
    assert exception["exception.message"] == "card declined"
    [dead] = events(span, "busline.dead_letter")
    assert dead["busline.dead_letter.reason"] == "handler-error"
    assert dead["error.type"] == ERROR_TYPE
    assert dead["busline.error_queue"] == ERROR_QUEUE
    assert events(span, "busline.retry") == []


async def test_rejected_message_is_dead_lettered_without_retries(make_bus, traced, spans, bus_url):
    bus = make_bus("checkout", retry=RetryPolicy(immediate=3, delays=(1.0,)), **traced)

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        raise Reject("no such customer")

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1"))
        await take_from_queue(bus_url, ERROR_QUEUE, 1)
        await spans.wait_for(PROCESS)

    span = spans.one(PROCESS)
    assert attrs(span)["error.type"] == "busline.errors.Reject"
    assert events(span, "busline.retry") == []
    [dead] = events(span, "busline.dead_letter")
    assert dead["busline.dead_letter.reason"] == "rejected"


async def test_delayed_retries_are_events_and_each_round_is_a_process_span(
    make_bus, traced, spans, bus_url
):
    memory = bus_url.startswith("memory://")
    clock = VirtualClock() if memory else None
    delay = 30.0 if memory else 0.2
    options = {"clock": clock} if clock else {}
    bus = make_bus("checkout", retry=RetryPolicy(immediate=0, delays=(delay,)), **options, **traced)
    attempts: list[int] = []

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx) -> None:
        attempts.append(ctx.attempt)
        raise CardDeclined(f"declined on attempt {ctx.attempt}")

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1"))
        await spans.wait_for(PROCESS)
        if clock is not None:
            clock.advance(delay)
        await take_from_queue(bus_url, ERROR_QUEUE, 1)
        await spans.wait_for(PROCESS, count=2)

    send = spans.one("send shop.PlaceOrder")
    first, second = sorted(spans.named(PROCESS), key=lambda s: s.start_time or 0)
    # Both rounds belong to the sender's trace: the delayed copy keeps its trace context.
    assert is_child(first, send) and is_child(second, send)
    assert attrs(first)["busline.message.attempt"] == 1
    assert attrs(second)["busline.message.attempt"] == 2
    [retry] = events(first, "busline.retry")
    assert retry["busline.retry.kind"] == "delayed"
    assert retry["busline.retry.delay"] == delay
    assert retry["busline.retry.attempt"] == 1
    assert retry["busline.retry.round"] == 1
    assert retry["exception.type"] == ERROR_TYPE
    assert first.status.status_code is StatusCode.ERROR
    assert events(first, "busline.dead_letter") == []
    [dead] = events(second, "busline.dead_letter")
    assert dead["busline.dead_letter.reason"] == "handler-error"


async def test_immediate_retries_are_events_on_the_one_process_span(make_bus, traced, spans):
    bus = make_bus("checkout", retry=RetryPolicy(immediate=2, delays=()), **traced)
    calls = 0

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise CardDeclined(f"blip {calls}")

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1"))
        await spans.wait_for(PROCESS)

    span = spans.one(PROCESS)
    retries = events(span, "busline.retry")
    assert [(r["busline.retry.kind"], r["busline.retry.attempt"]) for r in retries] == [
        ("immediate", 1),
        ("immediate", 2),
    ]
    assert all(r["exception.type"] == ERROR_TYPE for r in retries)
    assert retries[0]["exception.message"] == "blip 1"
    assert span.status.status_code is StatusCode.UNSET  # the third attempt succeeded


async def test_undecodable_message_gets_a_dead_letter_span_in_the_senders_trace(
    make_bus, traced, spans, bus_url
):
    bus = make_bus("checkout", **traced)

    @bus.command_handler
    async def place(cmd: PlaceOrder) -> None:
        pass

    async with bus:
        assert bus.transport is not None
        app_tracer = spans.provider.get_tracer("web-app")
        with app_tracer.start_as_current_span("POST /orders"):
            out = bus.messages.create(PlaceOrder(order_id="o-1"), MessageKind.COMMAND)
        out.envelope.body = b"\xff not json"
        await bus.publisher.publish_all([out])
        await take_from_queue(bus_url, ERROR_QUEUE, 1)
        # Recorded before the message is moved, so it is there once the error queue has it.
        await spans.wait_for("dead_letter shop.PlaceOrder", timeout=2)

    send = spans.one("send shop.PlaceOrder")
    settle = spans.one("dead_letter shop.PlaceOrder")
    assert is_child(settle, send)
    assert attrs(settle)["messaging.operation.type"] == "settle"
    assert attrs(settle)["error.type"] == "DecodeError"
    [dead] = events(settle, "busline.dead_letter")
    assert dead["busline.dead_letter.reason"] == "undecodable"
    assert spans.named(PROCESS) == []


async def test_messages_of_a_failed_attempt_leave_no_send_span(make_bus, traced, spans):
    bus = make_bus("checkout", retry=RetryPolicy(immediate=1, delays=()), **traced)
    calls = 0

    @bus.command_handler
    async def place(cmd: PlaceOrder, ctx: Context) -> None:
        nonlocal calls
        calls += 1
        await ctx.send(ChargePayment(order_id=cmd.order_id, amount=float(calls)))
        if calls == 1:
            raise CardDeclined("first attempt fails")

    @bus.command_handler
    async def charge(cmd: ChargePayment) -> None:
        pass

    async with bus:
        await bus.send(PlaceOrder(order_id="o-1"))
        await spans.wait_for(PROCESS, "send shop.ChargePayment", "process shop.ChargePayment")

    # Only the successful attempt's message was sent, and only it has a span.
    send = spans.one("send shop.ChargePayment")
    assert is_child(send, spans.one(PROCESS))
