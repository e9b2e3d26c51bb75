"""The RabbitMQ transport for ``amqp://`` and ``amqps://`` URLs, on busline's own AMQP client.

Modules, one concept each:

- :mod:`.amqp`: the AMQP 0-9-1 client, on pamqp's frame codec (docs/amqp-client.md);
- :mod:`.config`: the URL, TLS and transport options, parsed once;
- :mod:`.connection`: connect, notice loss, reconnect with backoff;
- :mod:`.topology`: queues, exchanges and bindings, declared once per connection;
- :mod:`.wire`: the envelope <-> AMQP properties mapping (docs/wire-format.md);
- :mod:`.properties`: fast encoding of content properties;
- :mod:`.publisher`: publisher confirms, returns, retries across reconnects;
- :mod:`.consumer`: subscriptions, one channel each;
- :mod:`.delivery`: settling one message (ack, dead-letter, defer);
- :mod:`.parking`: parking a message whose properties do not decode;
- :mod:`.acks`: batched acknowledgements, never ahead of settlement;
- :mod:`.delays`: delayed redelivery through TTL queues;
- :mod:`.transport`: the composition, :class:`RabbitMQTransport`.
"""

from .transport import RabbitMQTransport

__all__ = ["RabbitMQTransport"]
