"""Topic names of the pipeline. A namespace prefixes all four, so test sessions and
benchmark runs can share one broker without reading each other's records."""

import re

import msgspec

from core.errors import ConfigError

__all__ = ["TopicNames", "PARTITIONS"]


_NAMESPACE = re.compile(r"[A-Za-z0-9._-]{1,232}")


class TopicNames(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    transactions: str = "transactions"
    scores: str = "fraud-scores"
    alerts: str = "fraud-alerts"
    deadletter: str = "fraud-deadletter"

    @classmethod
    def namespaced(cls, namespace: str) -> "TopicNames":
        """The four default names prefixed with `namespace.` (empty namespace: the defaults)."""
        if not namespace:
            return cls()
        # Kafka's rule for topic names; the longest default name is 16 characters
        if not _NAMESPACE.fullmatch(namespace):
            raise ConfigError(f"namespace {namespace!r} would make invalid topic names: use at most "
                              "232 letters, digits, '.', '_' or '-'")
        base = cls()
        return cls(*(f"{namespace}.{name}" for name in base.all()))

    def all(self) -> tuple[str, str, str, str]:
        return (self.transactions, self.scores, self.alerts, self.deadletter)


# Partition counts from the design: per-card ordering on 6 input partitions.
PARTITIONS = {"transactions": 6, "scores": 6, "alerts": 3, "deadletter": 3}
