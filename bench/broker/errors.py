"""Broker errors: each says what went wrong and what to do about it."""

from core.errors import FraudstreamError

__all__ = ["BrokerError"]


class BrokerError(FraudstreamError):
    """The local Kafka broker could not be fetched, started, found or stopped."""
