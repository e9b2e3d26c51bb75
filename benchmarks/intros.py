"""The prose above some of the report's tables (kept apart from their columns)."""

from __future__ import annotations

RELAY_INTRO = (
    "Each run writes a backlog the way a broker outage does: a second instance of the "
    "service, whose publishes are all refused, commits the messages with "
    "`bus.transaction()` ({tx} per transaction), and its relay is stopped. The measured bus's "
    "relay is then woken and timed until no row is pending in the database; on the same bus, "
    "the same number of `bus.send` calls (half just before the relay, half just after) with "
    "{window} in flight is the base of the ratio (the relay's `relay_window` is set to the "
    "same {window}). Publishing only, no consumer; each queue's depth is checked afterwards. "
    "The ratio is taken per run, then the median."
)
HANDLER_INTRO = (
    "The handler writes one business row through `ctx.db` and sends one command with "
    "`ctx.send`: with a store, the row, the inbox record and the outbox row commit in one "
    "transaction, then the command is published, then the incoming one is acked. `{base}` "
    "runs the same handler without a store (it only sends). Each run has a fresh SQLite file "
    "or PostgreSQL schema; afterwards every handled message must have its business row and "
    "its sent command, and no outbox row may be pending."
)
TRACING_INTRO = (
    "The commands workload with `tracing=False`, with busline's default (`tracing=None`) "
    "and no SDK configured, and with an OpenTelemetry SDK `TracerProvider` whose "
    "`BatchSpanProcessor` (default settings) feeds an exporter that drops the spans "
    "(`otel-metrics`: plus an SDK `MeterProvider` with a periodic reader); providers are "
    "passed to the bus and shut down after each run. `installed`: whether busline "
    "installed its tracing middleware (it must not without an SDK). `spans/msg`: spans "
    "that reached the exporter per message (2 = send and process, none dropped)."
)
SAGA_INTRO = (
    "Each instance is driven by one start command and {updates} update commands (two "
    "queues); the saga's step counts itself in the instance's state and sends one command, so "
    "the state (versioned: optimistic concurrency), the step record, the inbox record and the "
    "outbox row commit in one transaction. The plain handler on the same store (the 1.00 of "
    "each saga row) gets the same commands and writes one business row through `ctx.db` and "
    "sends one command instead. A plain handler on a second bus without a store counts the "
    "sent commands: the clock runs from the first start until the last step's command "
    "arrived. Every start's command arrives before the updates are sent (round-robin over the "
    "instances). Afterwards each instance must hold exactly its {steps} steps and the sum of "
    "its messages' numbers (no update lost or applied twice), each handled message its row, "
    "and no outbox row may be pending. `conflicts`: steps rerun after losing an "
    "optimistic-concurrency race."
)
MEMORY_INTRO = (
    "`busline-memory` is busline's whole path on its in-process transport: each of 64 senders "
    "awaits `bus.send` (envelope, encoding, the memory broker's queue), a handler counts the "
    "commands, each delivery is acknowledged. `asyncio-queue`, its 1.00, hands the same "
    "payload dicts through a bare `asyncio.Queue` bounded at the prefetch to 8 worker tasks "
    "in the same process: what asyncio itself costs."
)
