"""The fulfilment process of the saga tests: messages and state."""

from __future__ import annotations

import msgspec

from busline import Command, Event


class OrderPlaced(Event, wire_name="sagas.OrderPlaced"):
    order_id: str
    amount: float = 10.0


class PaymentReceived(Event, wire_name="sagas.PaymentReceived"):
    order_id: str


class StockReserved(Event, wire_name="sagas.StockReserved"):
    order_id: str


class StockShort(Event, wire_name="sagas.StockShort"):
    order_id: str


class ReserveStock(Command, wire_name="sagas.ReserveStock"):
    order_id: str


class ReleaseStock(Command, wire_name="sagas.ReleaseStock"):
    order_id: str


class RetrievePayment(Command, wire_name="sagas.RetrievePayment"):
    order_id: str
    amount: float


class RefundPayment(Command, wire_name="sagas.RefundPayment"):
    order_id: str


class ShipOrder(Command, wire_name="sagas.ShipOrder"):
    order_id: str


class PaymentOverdue(Command, wire_name="sagas.PaymentOverdue"):
    order_id: str


class Touch(Command, wire_name="sagas.Touch"):
    order_id: str
    n: int


class Fulfilment(msgspec.Struct):
    order_id: str
    paid: bool = False
    reserved: bool = False
    shipped: bool = False
    touches: int = 0
