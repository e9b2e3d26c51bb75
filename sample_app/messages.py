"""The shop's messages. Wire names are namespaced (``shop.``) and independent of module paths.

Commands are named as requests to one owner ("please do X"); events as facts in the past tense
("X happened"). Which one each link uses, and why, is written next to the code that sends it.
"""

from __future__ import annotations

from busline import Command, Event

# -- checkout ---------------------------------------------------------------------------------


class OrderPlaced(Event, wire_name="shop.OrderPlaced"):
    """Checkout accepted an order (and took its idempotency key)."""

    order_id: str
    customer: str
    sku: str
    quantity: int
    amount: float
    card: str = ""


# -- payment ----------------------------------------------------------------------------------


class RetrievePayment(Command, wire_name="shop.RetrievePayment"):
    """Charge the customer's card for an order, once."""

    order_id: str
    customer: str
    amount: float
    card: str = ""


class RefundPayment(Command, wire_name="shop.RefundPayment"):
    """Give back whatever was charged for an order (nothing, if nothing was)."""

    order_id: str


class PaymentRetrieved(Event, wire_name="shop.PaymentRetrieved"):
    """The card was charged."""

    order_id: str
    amount: float


class PaymentDeclined(Event, wire_name="shop.PaymentDeclined"):
    """The card was not charged, and will not be for this order."""

    order_id: str
    reason: str


class PaymentRefunded(Event, wire_name="shop.PaymentRefunded"):
    """What was charged for an order was given back (``amount`` may be 0)."""

    order_id: str
    amount: float


# -- inventory --------------------------------------------------------------------------------


class ReserveStock(Command, wire_name="shop.ReserveStock"):
    """Hold ``quantity`` of ``sku`` for an order."""

    order_id: str
    sku: str
    quantity: int


class ReleaseStock(Command, wire_name="shop.ReleaseStock"):
    """Put back what was held for an order (nothing, if nothing was)."""

    order_id: str


class StockReserved(Event, wire_name="shop.StockReserved"):
    """The stock is held for the order."""

    order_id: str


class StockShort(Event, wire_name="shop.StockShort"):
    """There was not enough stock; nothing is held."""

    order_id: str
    sku: str


class StockReleased(Event, wire_name="shop.StockReleased"):
    """What was held for an order is back on the shelf (``quantity`` may be 0)."""

    order_id: str
    quantity: int


# -- shipping ---------------------------------------------------------------------------------


class ShipOrder(Command, wire_name="shop.ShipOrder"):
    """Send a paid, reserved order to the customer."""

    order_id: str
    customer: str


class OrderShipped(Event, wire_name="shop.OrderShipped"):
    """The parcel left."""

    order_id: str
    tracking: str


# -- fulfilment (the saga) --------------------------------------------------------------------


class FulfilmentOverdue(Command, wire_name="shop.FulfilmentOverdue"):
    """The saga's own deadline: a timeout it sends itself."""

    order_id: str


class FulfilmentProgressed(Event, wire_name="shop.FulfilmentProgressed"):
    """A step of an order's fulfilment happened (for whoever shows progress)."""

    order_id: str
    step: str


class OrderFulfilled(Event, wire_name="shop.OrderFulfilled"):
    """The order was paid for, reserved and shipped: the process ended well."""

    order_id: str
    customer: str
    amount: float


class OrderCancelled(Event, wire_name="shop.OrderCancelled"):
    """The order will not be fulfilled; whatever was done for it was undone."""

    order_id: str
    customer: str
    reason: str
