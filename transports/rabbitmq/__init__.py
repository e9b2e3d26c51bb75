"""The RabbitMQ transport for ``amqp://`` and ``amqps://`` URLs, on aiormq.

Modules, one concept each:

- :mod:`.config`: the URL, TLS and transport options, parsed once;
- :mod:`.connection`: connect, notice loss, reconnect with backoff;
- :mod:`.sockets`: socket writes coalesced per event-loop iteration;
- :mod:`.topology`: queues, exchanges and bindings, declared once per connection;
- :mod:`.wire`: the envelope <-> AMQP properties mapping (docs/wire-format.md);
- :mod:`.frames`: fast encoding of ``basic.publish`` frames;
- :mod:`.publisher`: publisher confirms, returns, retries across reconnects;
- :mod:`.consumer`: subscriptions, one channel each;
- :mod:`.delivery`: settling one message (ack, dead-letter, defer);
- :mod:`.acks`: batched acknowledgements, never ahead of settlement;
- :mod:`.delays`: delayed redelivery through TTL queues;
- :mod:`.transport`: the composition, :class:`RabbitMQTransport`.
"""

from .transport import RabbitMQTransport

__all__ = ["RabbitMQTransport"]
