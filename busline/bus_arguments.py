"""What a :class:`~busline.Bus` accepts: its constructor's arguments checked, and the
per-handler options its decorators understand."""

from __future__ import annotations

from collections.abc import Sequence

from busline.middleware import Middleware, OptionCheck
from busline.retries import RetryMiddleware
from busline.stores import StoreSettings
from busline.tracing.settings import TRACING_HANDLER_OPTIONS


def check_arguments(
    service: str,
    prefetch: int,
    queue_type: str,
    store: str | None,
    store_settings: StoreSettings | None,
) -> None:
    """Refuse constructor arguments that cannot work, each with what to do instead."""
    if not service or not service.strip():
        raise ValueError("service must be a non-empty name")
    if prefetch < 1:
        raise ValueError("prefetch must be at least 1")
    if queue_type not in ("quorum", "classic"):
        raise ValueError("queue_type must be 'quorum' or 'classic'")
    if store_settings is not None and store is None:
        raise ValueError("store_settings= needs a store= URL")


def handler_options(middleware: Sequence[Middleware]) -> dict[str, OptionCheck]:
    """Every per-handler option a bus understands: busline's own and its middleware's."""
    options: dict[str, OptionCheck] = {
        **RetryMiddleware.handler_options,
        **TRACING_HANDLER_OPTIONS,
    }
    for mw in middleware:
        options.update(mw.handler_options)
    return options
