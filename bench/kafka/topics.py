"""Create (idempotently) and delete the pipeline's topics (the four, and the compacted
card-state changelog)."""

from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from bench.errors import BrokerUnreachable, TopicError
from core.limits import describe_topic_configs
from core.topics import PARTITIONS, STATE_TOPIC_CONFIG, TopicNames, state_topic_problem

__all__ = ["TopicError", "BrokerUnreachable", "require_broker", "create_topics", "delete_topics", "require_topic",
           "replica_settings", "describe_replicas"]

ADMIN_TIMEOUT_S = 30.0


def _admin(bootstrap: str) -> AdminClient:
    # log_level 4: warnings and errors; not the notice "Purging 1 unserved events from
    # background queue" librdkafka prints on the CLI's stderr when a client ends
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})


def replica_settings(brokers: int) -> tuple[int, dict[str, str]]:
    """(replication factor, topic configs) for new topics on a cluster of `brokers`.

    From 3 brokers on: 3 replicas and min.insync.replicas=2, so a write the producers' acks=all
    got acknowledged is on two brokers, and one broker can be down without stopping writes.
    With fewer there is nothing to ask of: one replica per broker, min.insync.replicas=1."""
    if brokers >= 3:
        return 3, {"min.insync.replicas": "2"}
    return max(brokers, 1), {}


def describe_replicas(replication: int, configs: dict[str, str]) -> str:
    """What topics made with replica_settings get, in one line for an operator."""
    min_insync = int(configs.get("min.insync.replicas", "1"))
    text = f"replication factor {replication}, min.insync.replicas {min_insync}"
    if replication < 3:
        text += (f" (a cluster of {replication} broker{'s' if replication > 1 else ''}: an acknowledged write "
                 "can be lost with one broker; from 3 brokers on, topics get 3 replicas and min.insync.replicas 2)")
    return text


def create_topics(bootstrap: str, names: TopicNames) -> dict[str, Any]:
    """Create the topics unless they exist; {"created": [...], "existed": [...],
    "replicas": <what created topics got, one line>}.

    Raises TopicError when a topic exists with a partition count other than the design's.
    """
    admin = _admin(bootstrap)
    meta = admin.list_topics(timeout=ADMIN_TIMEOUT_S)
    replication, configs = replica_settings(len(meta.brokers))
    wanted = dict(zip(names.every(), PARTITIONS.values()))
    existed, missing = [], []
    for name, partitions in wanted.items():
        found = meta.topics.get(name)
        if found is None or found.error is not None:
            missing.append(NewTopic(name, num_partitions=partitions, replication_factor=replication,
                                    config={**configs, **(STATE_TOPIC_CONFIG if name == names.state else {})}))
        elif len(found.partitions) != partitions:
            raise TopicError(
                f"topic `{name}` exists with {len(found.partitions)} partitions, expected "
                f"{partitions}: delete it or use another --namespace")
        else:
            existed.append(name)
    checked = names.state in existed
    if checked:   # before creating any: a refused changelog leaves nothing half made
        _require_compacted(admin, names.state)
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
    if names.state in existed and not checked:   # another creator won the race for it
        _require_compacted(admin, names.state)
    return {"created": created, "existed": existed, "replicas": describe_replicas(replication, configs)}


def _require_compacted(admin: Any, name: str) -> None:
    """TopicError when an existing card-state topic could lose live cards (core.topics)."""
    configs = describe_topic_configs(admin, (name,), ADMIN_TIMEOUT_S)[name]
    problem = state_topic_problem(name, configs)
    if problem:
        raise TopicError(problem)


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


def require_topic(bootstrap: str, topic: str, namespace: str = "") -> None:
    """Fail as one CLI line unless the broker answers and `topic` (of `namespace`) exists."""
    meta = _probe(bootstrap, topic).topics.get(topic)
    if meta is None or meta.error is not None:
        create = "bench topics create" + (f" --namespace {namespace}" if namespace else "")
        raise TopicError(f"topic {topic} does not exist on {bootstrap} ({create})")
