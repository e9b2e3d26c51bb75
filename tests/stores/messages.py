"""Message types of the store tests."""

from __future__ import annotations

from busline import Command, Event


class PlaceOrder(Command, wire_name="stores.PlaceOrder"):
    order_id: str


class ChargeCard(Command, wire_name="stores.ChargeCard"):
    order_id: str


class OrderPlaced(Event, wire_name="stores.OrderPlaced"):
    order_id: str


class Step(Command, wire_name="stores.Step"):
    batch: str
    seq: int
