"""The names busline's telemetry uses: OpenTelemetry messaging semantic conventions plus its own.

Defined here rather than imported from ``opentelemetry-semantic-conventions`` because the core
depends on ``opentelemetry-api`` only, and because the messaging conventions are still in
development: one file to update when they move. The values follow the messaging conventions
(spans, metrics and the RabbitMQ page) as of semantic conventions 1.3x, where the operation type
for sending is ``send`` (formerly ``publish``).
"""

from __future__ import annotations

from typing import Final

# -- attributes from the messaging semantic conventions ----------------------------------------

MESSAGING_SYSTEM: Final = "messaging.system"
MESSAGING_OPERATION_TYPE: Final = "messaging.operation.type"
MESSAGING_OPERATION_NAME: Final = "messaging.operation.name"
MESSAGING_DESTINATION_NAME: Final = "messaging.destination.name"
MESSAGING_MESSAGE_ID: Final = "messaging.message.id"
MESSAGING_MESSAGE_CONVERSATION_ID: Final = "messaging.message.conversation_id"
MESSAGING_CONSUMER_GROUP_NAME: Final = "messaging.consumer.group.name"
MESSAGING_RABBITMQ_ROUTING_KEY: Final = "messaging.rabbitmq.destination.routing_key"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"

#: ``messaging.operation.type`` values.
OPERATION_SEND: Final = "send"
OPERATION_PROCESS: Final = "process"
OPERATION_SETTLE: Final = "settle"

#: ``messaging.system`` of RabbitMQ, the one system whose own attributes busline sets.
SYSTEM_RABBITMQ: Final = "rabbitmq"

# -- busline's own attributes ------------------------------------------------------------------

BUSLINE_MESSAGE_KIND: Final = "busline.message.kind"
BUSLINE_MESSAGE_TYPE: Final = "busline.message.type"
BUSLINE_MESSAGE_ATTEMPT: Final = "busline.message.attempt"
BUSLINE_SERVICE: Final = "busline.service"
BUSLINE_HANDLER: Final = "busline.handler"
BUSLINE_RETRY_KIND: Final = "busline.retry.kind"
BUSLINE_RETRY_ATTEMPT: Final = "busline.retry.attempt"
BUSLINE_RETRY_DELAY: Final = "busline.retry.delay"
BUSLINE_RETRY_ROUND: Final = "busline.retry.round"
BUSLINE_DEAD_LETTER_REASON: Final = "busline.dead_letter.reason"
BUSLINE_ERROR_QUEUE: Final = "busline.error_queue"
BUSLINE_SAGA_NAME: Final = "busline.saga.name"
BUSLINE_SAGA_KEY: Final = "busline.saga.key"
BUSLINE_SAGA_OUTCOME: Final = "busline.saga.outcome"

# -- span events -------------------------------------------------------------------------------

#: Added to a process span each time the handler failed and the message will be tried again.
EVENT_RETRY: Final = "busline.retry"
#: Added to a process (or settle) span when the message is moved to the error queue.
EVENT_DEAD_LETTER: Final = "busline.dead_letter"

# -- metrics -----------------------------------------------------------------------------------

METRIC_SENT_MESSAGES: Final = "messaging.client.sent.messages"
METRIC_CONSUMED_MESSAGES: Final = "messaging.client.consumed.messages"
METRIC_PROCESS_DURATION: Final = "messaging.process.duration"
METRIC_OPERATION_DURATION: Final = "messaging.client.operation.duration"
METRIC_RETRIES: Final = "busline.retries"
METRIC_DEAD_LETTERED: Final = "busline.dead_lettered"
METRIC_OUTBOX_BACKLOG: Final = "busline.outbox.backlog"

#: Histogram buckets the conventions ask for on both duration metrics, in seconds.
DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
