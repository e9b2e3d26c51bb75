"""Transports for busline, chosen by URL scheme: ``memory://`` and ``amqp(s)://``."""
