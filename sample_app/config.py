"""What every service of one run shares: where the broker and the stores are, the faults, the
counters, and how each service's bus is built."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from busline import Bus, RetryPolicy, StoreSettings
from sample_app.faults import FaultMiddleware, Faults, Tally
from sample_app.storage import store_url

#: Immediate retries ride out a transient crash at once; the delayed ones show on the broker.
RETRY = RetryPolicy(immediate=3, delays=(0.5, 2.0))
#: The relay also delivers the saga's deadlines: poll often so one fires close to its time.
STORE_SETTINGS = StoreSettings(relay_interval=0.2, relay_max_backoff=2.0)

log = logging.getLogger("sample_app")


@dataclass
class ShopConfig:
    """One run of the shop."""

    broker: str = "memory://"
    #: A folder (SQLite files) or a ``postgresql://`` URL (a schema per service).
    store: str = ""
    run_id: str = "run"
    faults: Faults = field(default_factory=Faults)
    tally: Tally = field(default_factory=Tally)
    #: Seconds the saga waits for payment and stock before it cancels the order.
    deadline: float = 10.0
    verbose: bool = False
    tracer_provider: Any = None
    #: Per-message lines go here (``--verbose``); silent by default.
    say: Callable[[str], None] = field(default=lambda line: None)

    @classmethod
    def from_env(cls) -> ShopConfig:
        """The settings of a service started by a tool (``busline run|map|lint
        sample_app.payment:bus``): ``SHOP_BROKER``, ``SHOP_STORE`` and ``SHOP_RUN_ID``."""
        return cls(
            broker=os.environ.get("SHOP_BROKER", "memory://shop"),
            store=os.environ.get("SHOP_STORE", "shop-data"),
            run_id=os.environ.get("SHOP_RUN_ID", "shop"),
        )

    def bus(self, service: str, **declared: Any) -> Bus:
        """The bus of ``service``: its own store, the shared broker, the fault middleware;
        ``declared`` says what it sends or publishes outside handlers (``publishes=[...]``)."""
        options: dict[str, Any] = dict(declared)
        if self.tracer_provider is not None:
            # Events are children of their publish (not linked) so that an order, which moves
            # from service to service by events and commands alike, is one trace.
            options.update(tracer_provider=self.tracer_provider, trace_events_as="child")
        return Bus(
            service=service,
            url=self.broker,
            store=store_url(self.store, service, self.run_id),
            store_settings=STORE_SETTINGS,
            retry=RETRY,
            middleware=[FaultMiddleware(self.faults, self.tally)],
            send_timeout=10.0,
            shutdown_timeout=10.0,
            **options,
        )
