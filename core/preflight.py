"""Start-up checks of the service, before any worker starts: each failure is one clear line.

Client settings (librdkafka judges them), Kafka at the bootstrap address, the topics (the
card-state changelog too when state is on), and what the credentials allow on them. What
fails here can only be fixed by the operator, so the service stops; what fails later is a
run-time failure the supervisor retries.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from core.config import ScoringConfig, kafka_int
from core.errors import ConfigError, StartupError
from core.identity import CREDENTIAL_CODES

__all__ = ["check_client_settings", "check_kafka", "admin_settings", "session_timeout_problem",
           "transaction_timeout_problem"]

log = logging.getLogger(__name__)

_METADATA_TIMEOUT_S = 15.0


def check_client_settings(config: ScoringConfig) -> None:
    """Let librdkafka judge the producer and consumer settings once, here: a bad -X key is one
    line at start-up instead of a traceback in every worker it restarts."""
    from confluent_kafka import Consumer, Producer

    from core.txn import consumer_settings, producer_settings

    for kind, make, settings in (("producer", Producer, producer_settings(config, 0)),
                                 ("consumer", Consumer, consumer_settings(config, 0))):
        try:
            # no bootstrap address: judged without connecting (a client connects when made)
            client = make({**settings, "log_level": 0, "bootstrap.servers": ""})
        except KafkaException as exc:
            raise ConfigError(f"Kafka {kind} settings: {exc.args[0].str().strip()}") from None
        if kind == "consumer":
            client.close()


def admin_settings(kafka: dict[str, str]) -> dict[str, str]:
    """Passthrough keys an AdminClient accepts (consumer/producer-only keys dropped)."""
    admin_ok = ("security.", "ssl.", "sasl.", "client.", "socket.", "broker.", "metadata.", "reconnect.",
                "api.", "log.", "debug")
    return {k: v for k, v in kafka.items() if k.startswith(admin_ok)}


def check_kafka(config: ScoringConfig) -> int:
    """Kafka answers, the topics exist and may be used (the card-state changelog too when state
    is on); returns the input's partition count.

    From a client that logs nothing: an unreachable broker is one line after 15 s, not
    librdkafka's reconnect log. A topic without a leader (a failover) is only a warning: the
    workers retry it."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**admin_settings(config.kafka), "bootstrap.servers": config.bootstrap_servers,
                         "log_level": 0})
    found: dict[str, Any] = {}
    for topic in config.topics.every() if config.state else config.topics.all():
        try:
            found[topic] = admin.list_topics(topic, timeout=_METADATA_TIMEOUT_S).topics.get(topic)
        except KafkaException as exc:
            error = exc.args[0]
            hint = " (check the credentials: -X sasl.* / ssl.*)" if error.code() in CREDENTIAL_CODES else ""
            raise StartupError(f"cannot reach Kafka at {config.bootstrap_servers}: {error.str()}{hint}") from None
    missing = [t for t, meta in found.items() if meta is None or (
        meta.error is not None and meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART)]
    if missing:
        raise StartupError(f"topic(s) {', '.join(missing)} do not exist on {config.bootstrap_servers}"
                           f" ({config.topics.create_hint()})")
    refused = [f"{t}: {meta.error.str()}" for t, meta in found.items()
               if meta.error is not None and meta.error.code() in CREDENTIAL_CODES]
    if refused:
        raise StartupError(f"not allowed to use topic(s) on {config.bootstrap_servers} with these credentials: "
                           f"{'; '.join(refused)}")
    for t, meta in found.items():
        if meta.error is not None:
            log.warning("topic %s: %s (the workers will retry)", t, meta.error.str())
    _check_timeouts(admin, config)
    return len(found[config.topics.transactions].partitions) or 1


def session_timeout_problem(session_ms: int, broker: dict[str, str]) -> str | None:
    """Why the broker (its configs `broker`) would refuse a consumer's session.timeout.ms, or None."""
    low, high = (int(broker.get(f"group.{end}.session.timeout.ms", default))
                 for end, default in (("min", 6000), ("max", 1_800_000)))
    if low <= session_ms <= high:
        return None
    return (f"kafka.session.timeout.ms={session_ms}: the broker accepts {low}..{high} (its "
            f"group.min.session.timeout.ms and group.max.session.timeout.ms)")


def transaction_timeout_problem(txn_ms: int, broker: dict[str, str]) -> str | None:
    """Why the broker (its configs `broker`) would refuse a producer's transaction.timeout.ms, or None."""
    high = int(broker.get("transaction.max.timeout.ms", 900_000))
    if txn_ms <= high:
        return None
    return (f"kafka.transaction.timeout.ms={txn_ms}: the broker accepts at most {high} (its "
            f"transaction.max.timeout.ms): lower it")


def _check_timeouts(admin: Any, config: ScoringConfig) -> None:
    """Out of the broker's range, every worker's group join fails every 2 s, for ever, after the
    workers reported ready: one line here instead; so for a transaction timeout above the
    broker's maximum, which a worker only learns from librdkafka's fatal error lines. Unread
    broker configs (no DescribeConfigs right): no check, a worker then stops on the join or
    init_transactions error (core.loop, core.workerstart)."""
    from confluent_kafka.admin import ConfigResource

    from core.txn import consumer_settings, producer_settings

    session_ms = kafka_int(consumer_settings(config, 0)["session.timeout.ms"])
    txn_ms = kafka_int(producer_settings(config, 0).get("transaction.timeout.ms"))
    try:
        broker_id = next(iter(admin.list_topics(timeout=_METADATA_TIMEOUT_S).brokers))
        resource = ConfigResource(ConfigResource.Type.BROKER, str(broker_id))
        entries = admin.describe_configs([resource], request_timeout=_METADATA_TIMEOUT_S)[resource].result()
    except (KafkaException, StopIteration) as exc:
        log.debug("broker configs not read (%s): session.timeout.ms and transaction.timeout.ms not checked", exc)
        return
    broker = {k: e.value for k, e in entries.items() if e.value is not None}
    problem = (session_timeout_problem(session_ms, broker) if session_ms is not None else None) or (
        transaction_timeout_problem(txn_ms, broker) if config.exactly_once and txn_ms is not None else None)
    if problem:
        raise ConfigError(problem)
