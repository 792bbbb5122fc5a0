"""Topic names of the pipeline. A namespace prefixes all four, so test sessions and
benchmark runs can share one broker without reading each other's records."""

import msgspec

__all__ = ["TopicNames", "PARTITIONS"]


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
        base = cls()
        return cls(*(f"{namespace}.{name}" for name in base.all()))

    def all(self) -> tuple[str, str, str, str]:
        return (self.transactions, self.scores, self.alerts, self.deadletter)


# Partition counts from the design: per-card ordering on 6 input partitions.
PARTITIONS = {"transactions": 6, "scores": 6, "alerts": 3, "deadletter": 3}
