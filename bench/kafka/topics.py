"""Create (idempotently) and delete the pipeline's topics (the four, and the compacted
card-state changelog)."""

from confluent_kafka.admin import AdminClient, NewTopic

from bench.errors import BrokerUnreachable, TopicError
from core.topics import PARTITIONS, STATE_TOPIC_CONFIG, TopicNames

__all__ = ["TopicError", "BrokerUnreachable", "require_broker", "create_topics", "delete_topics", "require_topic"]

ADMIN_TIMEOUT_S = 30.0


def _admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topics(bootstrap: str, names: TopicNames) -> dict[str, list[str]]:
    """Create the topics unless they exist; {"created": [...], "existed": [...]}.

    Raises TopicError when a topic exists with a partition count other than the design's.
    """
    admin = _admin(bootstrap)
    meta = admin.list_topics(timeout=ADMIN_TIMEOUT_S)
    replication = min(3, len(meta.brokers))
    wanted = dict(zip(names.every(), PARTITIONS.values()))
    existed, missing = [], []
    for name, partitions in wanted.items():
        found = meta.topics.get(name)
        if found is None or found.error is not None:
            missing.append(NewTopic(name, num_partitions=partitions, replication_factor=replication,
                                    config=STATE_TOPIC_CONFIG if name == names.state else {}))
        elif len(found.partitions) != partitions:
            raise TopicError(
                f"topic `{name}` exists with {len(found.partitions)} partitions, expected "
                f"{partitions}: delete it or use another --namespace")
        else:
            existed.append(name)
    created = []
    futures = admin.create_topics(missing, request_timeout=ADMIN_TIMEOUT_S) if missing else {}
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except Exception as exc:  # KafkaException carrying the broker's error
            err = exc.args[0] if exc.args else exc
            if getattr(err, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                existed.append(name)  # a concurrent creator won the race
            else:
                raise TopicError(f"creating topic `{name}` failed: {err}") from exc
    return {"created": created, "existed": existed}


def delete_topics(bootstrap: str, names: TopicNames) -> list[str]:
    """Delete whichever of the topics exist; returns the deleted names."""
    admin = _admin(bootstrap)
    present = admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
    doomed = [n for n in names.every() if n in present]
    deleted = []
    for name, future in (admin.delete_topics(doomed, request_timeout=ADMIN_TIMEOUT_S).items()
                         if doomed else []):
        try:
            future.result()
            deleted.append(name)
        except Exception as exc:
            raise TopicError(f"deleting topic `{name}` failed: {exc}") from exc
    return deleted


def _probe(bootstrap: str, topic: str | None = None):
    """Metadata from a client that logs nothing: a broker that is not there is one CLI line,
    not librdkafka's reconnect log on stderr every 50 ms."""
    from confluent_kafka import KafkaException

    try:
        return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(topic, timeout=10.0)
    except KafkaException as exc:
        raise BrokerUnreachable(f"cannot reach Kafka at {bootstrap}: {exc.args[0].str()} "
                                "(a local one: bench broker up)") from None


def require_broker(bootstrap: str) -> None:
    """Raise BrokerUnreachable (one line) unless a broker answers at `bootstrap` within 10 s."""
    _probe(bootstrap)


def require_topic(bootstrap: str, topic: str) -> None:
    """Fail as one CLI line unless the broker answers and `topic` exists."""
    meta = _probe(bootstrap, topic).topics.get(topic)
    if meta is None or meta.error is not None:
        raise TopicError(f"topic {topic} does not exist on {bootstrap} (bench topics create)")
