"""The order domain's messages. Wire names are namespaced and independent of module paths."""

from __future__ import annotations

from busline import Command, Event


class PlaceOrder(Command, wire_name="shop.PlaceOrder"):
    """Checkout asks the orders service to accept an order."""

    order_id: str
    customer: str
    amount: float


class OrderPlaced(Event, wire_name="shop.OrderPlaced"):
    """The orders service accepted an order."""

    order_id: str
    customer: str
    amount: float


class ChargeCard(Command, wire_name="shop.ChargeCard"):
    """Ask payments to take the money for an order."""

    order_id: str
    amount: float


class PaymentCaptured(Event, wire_name="shop.PaymentCaptured"):
    """Payments took the money."""

    order_id: str
    amount: float


class ShipOrder(Command, wire_name="shop.ShipOrder"):
    """Ask the warehouse to ship a paid order."""

    order_id: str


class OrderShipped(Event, wire_name="shop.OrderShipped"):
    """The warehouse shipped an order."""

    order_id: str
