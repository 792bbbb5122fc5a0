"""A scoring worker's start-up against Kafka, before it consumes (core.loop.ScoringConsumer.run).

Three steps, each failing with one clear error: init_transactions (which also aborts whatever
transaction a killed predecessor with the same transactional.id left open), the topics
checked (they exist, are usable, and the card-state changelog is partitioned like the input and
compacted), and the output topics' max.message.bytes read (core.limits), so an oversize output
becomes a dead letter instead of an abort.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from core.config import ScoringConfig
from core.errors import ConfigError, PipelineError
from core.limits import OutputLimits, read_output_limits
from core.topics import state_topic_problem
from core.txn import admin_settings

__all__ = ["init_transactions", "output_limits", "check_topics"]

log = logging.getLogger(__name__)


def init_transactions(producer: Any, stopping: threading.Event, name: str, bootstrap: str) -> None:
    """producer.init_transactions, retried while Kafka says the error is retriable; returns
    without it once `stopping` is set. PipelineError when it fails for good (e.g. fenced)."""
    # Bounded waits so a stop() during start-up is honoured.
    while True:
        if stopping.is_set():
            # Stopped before it started (e.g. its supervisor died): init_transactions now
            # could fence the replacement a new supervisor has started with the same id.
            return
        try:
            producer.init_transactions(10.0)
            return
        except KafkaException as exc:
            error = exc.args[0]
            if error.retriable() and not error.fatal() and not stopping.is_set():
                log.warning("%s: init_transactions with Kafka at %s: %s; retrying", name, bootstrap, error.str())
                continue
            raise PipelineError(f"{name}: init_transactions failed: {error.str()}") from exc


def output_limits(config: ScoringConfig, name: str, client: int, batch_size: int) -> OutputLimits:
    """The output topics' size limits (core.limits.read_output_limits), the card-state
    changelog's with state on; the producer's own `client` limit for all of them when they
    cannot be read."""
    try:
        return read_output_limits(admin_settings(config), config.topics, client, batch_size, state=config.state)
    except KafkaException as exc:
        # A missing topic is reported by check_topics next; without DescribeConfigs rights
        # the producer's own limit is all there is to go by.
        if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            log.warning("%s: cannot read max.message.bytes of the output topics (%s): assuming they accept "
                        "the producer's message.max.bytes %d", name, exc.args[0], client)
        return OutputLimits.uniform(config.topics, client)


def check_topics(consumer: Any, config: ScoringConfig) -> None:
    """ConfigError when a configured topic does not exist or the changelog is partitioned
    unlike the input; PipelineError when Kafka cannot be reached or a topic is unusable."""
    topics = config.topics
    names = topics.all() + ((topics.state,) if config.state else ())
    try:
        metadata = consumer.list_topics(timeout=15.0)
    except KafkaException as exc:
        raise PipelineError(f"cannot reach Kafka at {config.bootstrap_servers}: {exc.args[0].str()}") from exc
    found = metadata.topics
    missing = [n for n in names if n not in found or (found[n].error is not None and found[n].error.code()
                                                       == KafkaError.UNKNOWN_TOPIC_OR_PART)]
    if missing:
        raise ConfigError(f"topic(s) {', '.join(missing)} do not exist on {config.bootstrap_servers}"
                          f" (create them with `bench topics create`)")
    unusable = [f"{n}: {found[n].error.str()}" for n in names if found[n].error is not None]
    if unusable:   # e.g. no leader during a failover, or not authorised: a Kafka failure
        raise PipelineError(f"topic(s) not usable on {config.bootstrap_servers}: {'; '.join(unusable)}")
    if config.state:   # partition p's state lives in partition p of the changelog
        n_in, n_state = (len(found[t].partitions) for t in (topics.transactions, topics.state))
        if n_state != n_in:
            raise ConfigError(f"topic {topics.state} has {n_state} partitions, {topics.transactions} "
                              f"{n_in}: the card-state changelog must be partitioned like the input")
        _check_compacted(config)


def _check_compacted(config: ScoringConfig) -> None:
    """ConfigError when the changelog's cleanup policy could delete a live card's latest record
    (core.topics.state_topic_problem); a warning when its configs cannot be read."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    name = config.topics.state
    try:
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        admin = AdminClient(admin_settings(config))   # held until the answer: its end cancels the request
        future = admin.describe_configs([resource], request_timeout=15.0)[resource]
        configs = {k: e.value for k, e in future.result(15.0).items()}
    except (KafkaException, TimeoutError) as exc:   # e.g. no DescribeConfigs rights: it may well be right
        log.warning("cannot read the configs of %s (%s): not checking that it is compacted", name,
                    exc.args[0] if exc.args else exc)
        return
    problem = state_topic_problem(name, configs)
    if problem:
        raise ConfigError(problem)
