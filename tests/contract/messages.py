"""Message types the contract suite uses."""

from __future__ import annotations

from busline import Command, Event


class PlaceOrder(Command, wire_name="contract.PlaceOrder"):
    order_id: str
    amount: float


class ShipOrder(Command, wire_name="contract.ShipOrder"):
    order_id: str


class OrderPlaced(Event, wire_name="contract.OrderPlaced"):
    order_id: str
