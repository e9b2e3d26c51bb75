"""The checkout → payment → inventory flow the tracing tests follow."""

from __future__ import annotations

from busline import Command, Event


class PlaceOrder(Command, wire_name="shop.PlaceOrder"):
    order_id: str


class ChargePayment(Command, wire_name="shop.ChargePayment"):
    order_id: str
    amount: float


class PaymentCaptured(Event, wire_name="shop.PaymentCaptured"):
    order_id: str


class ReserveStock(Command, wire_name="shop.ReserveStock"):
    order_id: str
