"""Topic names of the pipeline. A namespace prefixes all of them, so test sessions and
benchmark runs can share one broker without reading each other's records.

`state` is the compacted changelog of the per-card state (core.cardstate), partitioned like
`transactions`."""

import re

import msgspec

from core.errors import ConfigError

__all__ = ["TopicNames", "PARTITIONS", "STATE_TOPIC_CONFIG", "state_topic_problem"]


_NAMESPACE = re.compile(r"[A-Za-z0-9._-]{1,232}")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")   # Kafka's rule ("." and ".." are refused too)


class TopicNames(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    transactions: str = "transactions"
    scores: str = "fraud-scores"
    alerts: str = "fraud-alerts"
    deadletter: str = "fraud-deadletter"
    state: str = "fraud-card-state"

    @classmethod
    def namespaced(cls, namespace: str) -> "TopicNames":
        """The default names prefixed with `namespace.` (empty namespace: the defaults)."""
        if not namespace:
            return cls()
        # Kafka's rule for topic names; the longest default name is 16 characters
        if not _NAMESPACE.fullmatch(namespace):
            raise ConfigError(f"namespace {namespace!r} would make invalid topic names: use at most "
                              "232 letters, digits, '.', '_' or '-'")
        base = cls()
        return cls(*(f"{namespace}.{getattr(base, f)}" for f in cls.__struct_fields__))

    def problem(self, state: bool = True) -> str | None:
        """Why these cannot be the pipeline's topics (None: they can): a name Kafka refuses, or
        the input or the card-state changelog (`state`: in use) sharing a topic with another
        (scores written into the input, say). The three outputs may share one."""
        fields = [f for f in self.__struct_fields__ if state or f != "state"]
        for field in fields:
            name = getattr(self, field)
            if not isinstance(name, str) or not _TOPIC.fullmatch(name) or name in (".", ".."):
                return (f"topics.{field}: {name!r} is not a Kafka topic name (1 to 249 letters, digits, "
                        "'.', '_' or '-')")
        for own in (f for f in ("transactions", "state") if f in fields):
            other = next((f for f in fields if f != own and getattr(self, f) == getattr(self, own)), None)
            if other is not None:
                first, second = sorted((own, other), key=fields.index)
                return (f"topics.{first} and topics.{second} are both {getattr(self, own)!r}: "
                        f"{own} needs a topic of its own")
        return None

    def all(self) -> tuple[str, str, str, str]:
        """The four topics every scoring process needs (`state` only with state on)."""
        return (self.transactions, self.scores, self.alerts, self.deadletter)

    def every(self) -> tuple[str, ...]:
        """All the pipeline's topics, the state changelog included (what to create/delete)."""
        return self.all() + (self.state,)

    def create_hint(self) -> str:
        """How a user makes these topics: the command, with the namespace they are in."""
        namespace = self.transactions.removesuffix("transactions").removesuffix(".")
        if _NAMESPACE.fullmatch(namespace or "x") and self == TopicNames.namespaced(namespace):
            return "create them with `bench topics create" + (f" --namespace {namespace}`" if namespace else "`")
        return "create them, or name existing ones in the config's topics"


# Partition counts from the design: per-card ordering on 6 input partitions.
PARTITIONS = {"transactions": 6, "scores": 6, "alerts": 3, "deadletter": 3, "state": 6}

# The state changelog keeps the latest record per card: compacted. The open segment is never
# compacted, and the cleaner takes a closed one once the uncompacted part is half the log
# (min.cleanable.dirty.ratio 0.5): a restore reads about twice the cards plus the open segment.
# At nearly one record per transaction (cards are rarely seen twice in a snapshot interval)
# the open segment is what grows: rolled every 10 min, not hourly, it holds 10 min of a
# partition's traffic (measured: docs/performance.md "Changelog segments").
STATE_TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.ms": "600000"}

# A live card's latest record was written at most the longest window (24 h) plus a snapshot
# interval ago; time-based deletion younger than this could remove it while the card still counts.
_MIN_STATE_RETENTION_MS = 25 * 3600 * 1000


def state_topic_problem(name: str, configs: dict[str, str | None]) -> str | None:
    """Why a card-state changelog with these topic configs would lose live cards' latest records
    (a restore would then silently miss them), or None when it keeps them."""
    policy = {p.strip() for p in (configs.get("cleanup.policy") or "delete").split(",")}
    # bench topics create prints this too, for an existing topic it does not alter
    fix = (f"to fix: kafka-configs --alter --entity-type topics --entity-name {name} --add-config "
           "cleanup.policy=compact; `bench topics create` makes a new topic right but leaves an existing one as it is")
    if "compact" not in policy:
        return (f"topic {name} has cleanup.policy={','.join(sorted(policy))}: the card-state changelog must be "
                f"compacted (it keeps each card's latest record, however old) ({fix})")
    if "delete" in policy:
        ms, size = int(configs.get("retention.ms") or -1), int(configs.get("retention.bytes") or -1)
        if size >= 0 or 0 <= ms < _MIN_STATE_RETENTION_MS:
            return (f"topic {name} has cleanup.policy=compact,delete with retention.ms={ms}, retention.bytes="
                    f"{size}: deletion could remove the latest record of a card still in its 24 h windows; "
                    f"use cleanup.policy=compact, or retention.ms -1 or >= {_MIN_STATE_RETENTION_MS} and "
                    f"retention.bytes -1 ({fix})")
    return None
