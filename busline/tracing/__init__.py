"""OpenTelemetry tracing and metrics for busline, following the messaging semantic conventions.

A bus turns tracing on by itself when the application configured an OpenTelemetry SDK (or passed
``tracer_provider=`` / ``meter_provider=``); ``Bus(tracing=False)`` turns it off, ``True`` forces
it on. Off, nothing is installed: no middleware, no hook, no cost. See docs/tracing.md.

What gets recorded:

* a PRODUCER span ``"send {queue}"`` / ``"publish {exchange}"`` per command sent / event
  published, whose context travels in the message headers through the global propagator;
* a CONSUMER span ``"process {destination}"`` per handled message, a child of the send span for
  commands and a new trace linked to it for events (both configurable, per bus and per handler
  with ``trace_as=``), with the error, retries (``busline.retry`` events) and dead-lettering
  (``busline.dead_letter`` events);
* the metrics ``messaging.client.sent.messages``, ``messaging.client.consumed.messages``,
  ``messaging.process.duration``, ``messaging.client.operation.duration``, ``busline.retries``,
  ``busline.dead_lettered`` and ``busline.outbox.backlog``.

Modules: :mod:`~busline.tracing.semconv` (names), :mod:`~busline.tracing.propagation` (context in
headers), :mod:`~busline.tracing.attributes` (span names and attributes),
:mod:`~busline.tracing.instruments` (metrics), :mod:`~busline.tracing.telemetry` (providers),
:mod:`~busline.tracing.middleware` (the spans), :mod:`~busline.tracing.scope` (the current
span's scope, and :func:`record_retry` for custom middleware), :mod:`~busline.tracing.settings`
(:class:`TracingSettings`, the per-handler option ``trace_as``). The OpenTelemetry API is loaded
only when one of the OpenTelemetry-backed names is first used (a bus starting with tracing on),
so ``import busline`` stays as fast without it; the SDK is never imported: the core depends on
the API only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from busline.tracing.scope import record_retry
from busline.tracing.semconv import EVENT_DEAD_LETTER, EVENT_RETRY

if TYPE_CHECKING:
    from busline.tracing.middleware import TracingMiddleware
    from busline.tracing.settings import TRACE_MODES, TraceMode, TracingSettings
    from busline.tracing.telemetry import Telemetry, sdk_configured

_LAZY = {
    "TracingSettings": "busline.tracing.settings",
    "TracingMiddleware": "busline.tracing.middleware",
    "TRACE_MODES": "busline.tracing.settings",
    "Telemetry": "busline.tracing.telemetry",
    "TraceMode": "busline.tracing.settings",
    "sdk_configured": "busline.tracing.telemetry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "EVENT_DEAD_LETTER",
    "EVENT_RETRY",
    "TRACE_MODES",
    "Telemetry",
    "TraceMode",
    "TracingMiddleware",
    "TracingSettings",
    "record_retry",
    "sdk_configured",
]
