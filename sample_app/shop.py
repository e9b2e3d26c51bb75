"""The shop: its services built, set up, started and stopped together (or one at a time)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from busline import Bus
from sample_app import checkout, fulfilment, inventory, loyalty, notification, payment, shipping
from sample_app.config import ShopConfig
from sample_app.storage import SERVICES, create_schemas, drop_schemas, is_postgres


class Service(Protocol):
    """What the shop needs of a service."""

    bus: Bus


BUILDERS: dict[str, Any] = {
    "checkout": checkout.make,
    "fulfilment": fulfilment.make,
    "payment": payment.make,
    "inventory": inventory.make,
    "shipping": shipping.make,
    "notification": notification.make,
    "loyalty": loyalty.make,
}
assert tuple(BUILDERS) == SERVICES


class Shop:
    """Some or all of the services of one run, in this process."""

    def __init__(self, config: ShopConfig, names: tuple[str, ...] = SERVICES) -> None:
        self.config = config
        self.names = names
        self.services: dict[str, Service] = {name: BUILDERS[name](config) for name in names}

    @property
    def checkout(self) -> checkout.Checkout:
        """The checkout service (when it runs here)."""
        found = self.services["checkout"]
        assert isinstance(found, checkout.Checkout)
        return found

    async def start(self) -> None:
        """Create the stores (schemas on PostgreSQL), then start every bus (each creates its
        tables in its start hook, before its handlers receive anything).

        Subscribers are started before anyone publishes, so no event is published to nobody
        on RabbitMQ (a subscriber's queue exists once it started)."""
        if is_postgres(self.config.store):
            await create_schemas(self.config.store, self.config.run_id, self.names)
        await asyncio.gather(*(s.bus.start() for s in self.services.values()))

    async def stop(self) -> None:
        """Stop every bus (each finishes what it is handling)."""
        await asyncio.gather(
            *(s.bus.stop() for s in self.services.values()), return_exceptions=True
        )

    async def drop_all(self) -> None:
        """Drop every PostgreSQL schema of the run (SQLite files go with their folder)."""
        if is_postgres(self.config.store):
            await drop_schemas(self.config.store, self.config.run_id, SERVICES)
