"""One registry of URL schemes: what each ``scheme://`` provides and how to load it.

A scheme may provide a transport factory (``Bus(url=...)``), a store class (``Bus(store=...)``)
and an error-queue admin (``busline errors``). Each is either the object itself or a lazy
``"module:attr"`` string, imported only when a URL of that scheme is first used, so
``import busline`` needs neither aio-pika nor a database driver. A scheme also names what to
``pip install`` when that import fails.

A third-party transport registers everything it supports in one call::

    register_scheme("kafka", transport="mypkg.kafka:KafkaTransport",
                    error_queue="mypkg.kafka:KafkaErrorQueue", install="mypkg[kafka]")

This module imports neither :mod:`busline.bus` nor any transport or driver: the transport,
store and error-queue modules import it, not the other way round.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from busline.urls import mask_url, scheme_of

#: What a scheme can provide; the words also appear in error messages.
Kind = Literal["transport", "store", "error_queue"]

_KIND_NAMES: dict[Kind, str] = {
    "transport": "transport",
    "store": "store",
    "error_queue": "error-queue support",
}


class UnknownSchemeError(ValueError):
    """No registered scheme provides what a URL asks for."""


class MissingDependencyError(ImportError):
    """A scheme's implementation could not be imported (usually an optional dependency)."""


@dataclass(frozen=True, slots=True)
class Scheme:
    """What one URL scheme provides; each part is an object, a ``"module:attr"`` or ``None``."""

    name: str
    #: Called as ``factory(url, TransportSettings)``, returns a transport.
    transport: object | None = None
    #: Called as ``cls(url, StoreSettings)``, returns a store.
    store: object | None = None
    #: Has ``async open(url, error_queue_name)``, returning an error queue.
    error_queue: object | None = None
    #: The pip requirement that installs what the lazy imports need, e.g. ``busline[rabbitmq]``.
    install: str | None = None

    def provider(self, kind: Kind) -> object | None:
        """The registered provider of ``kind``, possibly still a ``"module:attr"`` string."""
        value: object | None = getattr(self, kind)
        return value


_SCHEMES: dict[str, Scheme] = {}


def register_scheme(
    name: str,
    *,
    transport: object | None = None,
    store: object | None = None,
    error_queue: object | None = None,
    install: str | None = None,
) -> Scheme:
    """Register (or extend) ``name://``: the parts given replace earlier ones, the others stay.

    Returns the scheme as now registered.
    """
    key = name.lower().removesuffix("://")
    current = _SCHEMES.get(key) or Scheme(key)
    updated = Scheme(
        key,
        transport=current.transport if transport is None else transport,
        store=current.store if store is None else store,
        error_queue=current.error_queue if error_queue is None else error_queue,
        install=current.install if install is None else install,
    )
    _SCHEMES[key] = updated
    return updated


def unregister_scheme(name: str) -> None:
    """Forget ``name://`` entirely (for plugins that are unloaded, and for tests)."""
    _SCHEMES.pop(name.lower().removesuffix("://"), None)


def schemes() -> dict[str, Scheme]:
    """A snapshot of every registered scheme, by name."""
    return dict(_SCHEMES)


def known(kind: Kind) -> list[str]:
    """The schemes providing ``kind``, sorted, as ``name://``."""
    return sorted(f"{s.name}://" for s in _SCHEMES.values() if s.provider(kind) is not None)


def check(url: str, kind: Kind) -> Scheme:
    """The scheme of ``url`` if it provides ``kind``; else raise :class:`UnknownSchemeError`."""
    scheme = _SCHEMES.get(scheme_of(url))
    if scheme is None or scheme.provider(kind) is None:
        schemes_list = ", ".join(known(kind)) or "none"
        raise UnknownSchemeError(
            f"no {_KIND_NAMES[kind]} for URL {mask_url(url)!r}; known schemes: {schemes_list}"
        )
    return scheme


def resolve(url: str, kind: Kind) -> Any:
    """The provider of ``kind`` for ``url``, imported now if it was registered lazily.

    Raises :class:`UnknownSchemeError` for a scheme that does not provide ``kind`` and
    :class:`MissingDependencyError`, with what to install, when the import fails.
    """
    scheme = check(url, kind)
    target = scheme.provider(kind)
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    what = f"the {scheme.name}:// {_KIND_NAMES[kind]}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if scheme.install is None:
            raise MissingDependencyError(f"{what} cannot be imported: {exc}") from exc
        raise MissingDependencyError(
            f"{what} needs an optional dependency: {exc}. "
            f"Install it with: pip install '{scheme.install}'"
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise MissingDependencyError(
            f"{what} is registered as {target!r}, but {module_name} has no {attr!r}"
        ) from None


# busline's own schemes, all lazy: nothing below is imported until a URL uses it.
register_scheme(
    "memory",
    transport="busline.transports.memory:MemoryTransport",
    error_queue="busline.transports.memory_errors:MemoryErrorQueue",
)
for _amqp in ("amqp", "amqps"):
    register_scheme(
        _amqp,
        transport="busline.transports.rabbitmq:RabbitMQTransport",
        error_queue="busline.transports.rabbitmq.error_admin:RabbitMQErrorQueue",
        install="busline[rabbitmq]",
    )
register_scheme("sqlite", store="busline.stores.sqlite:SqliteStore", install="busline[sqlite]")
for _postgres in ("postgresql", "postgres"):
    register_scheme(
        _postgres, store="busline.stores.postgres:PostgresStore", install="busline[postgres]"
    )
