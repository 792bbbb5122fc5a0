"""A scoring worker's start-up against Kafka, before it consumes (core.loop.ScoringConsumer.run).

Three steps, each failing with one clear error: init_transactions (which also aborts whatever
transaction a killed predecessor with the same transactional.id left open), the output topics'
max.message.bytes read (core.limits), so an oversize output becomes a dead letter instead of an
abort, with the card-state changelog's configs (it must be compacted), and the topics checked
(they exist, are usable, and the changelog is partitioned like the input).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from core.config import ScoringConfig
from core.errors import ConfigError, PipelineError, SettingRefused
from core.limits import CONFIGS_TIMEOUT_S, OutputLimits, output_limits_of, read_topic_configs
from core.topics import state_topic_problem
from core.txn import admin_settings

__all__ = ["init_transactions", "output_limits", "check_topics"]

log = logging.getLogger(__name__)

# what a request to a Kafka that is not there ends with
_NO_ANSWER = frozenset({KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN,
                        KafkaError._RESOLVE})
# One init_transactions call's wait: a stop() during start-up is honoured within it.
_INIT_TIMEOUT_S = 10.0


def init_transactions(producer: Any, stopping: threading.Event, name: str, bootstrap: str, watch: Any = None) -> None:
    """producer.init_transactions, retried while Kafka says the error is retriable; returns
    without it once `stopping` is set. PipelineError when it fails for good (e.g. fenced).
    `watch` (core.txnwatch.CallWatch) sees each call begin and end."""
    # Bounded waits so a stop() during start-up is honoured.
    while True:
        if stopping.is_set():
            # Stopped before it started (e.g. its supervisor died): init_transactions now
            # could fence the replacement a new supervisor has started with the same id.
            return
        if watch is not None:
            watch.begin("init_transactions", _INIT_TIMEOUT_S)
        try:
            producer.init_transactions(_INIT_TIMEOUT_S)
            return
        except KafkaException as exc:
            error = exc.args[0]
            if error.retriable() and not error.fatal() and not stopping.is_set():
                log.warning("%s: init_transactions with Kafka at %s: %s; retrying", name, bootstrap, error.str())
                producer.poll(0)   # its log lines (core.rdkafkalog) and errors wait for a poll
                continue
            if error.code() == KafkaError.INVALID_TRANSACTION_TIMEOUT:   # a setting no restart cures
                raise SettingRefused(f"kafka.transaction.timeout.ms: the broker at {bootstrap} refuses it, it is larger "
                                  f"than the broker's transaction.max.timeout.ms (15 min by default): lower it") from exc
            raise PipelineError(f"{name}: init_transactions failed: {error.str()}") from exc
        finally:
            if watch is not None:
                watch.end()


def output_limits(config: ScoringConfig, name: str, client: int, batch_size: int,
                  stopping: threading.Event | None = None) -> OutputLimits:
    """The output topics' size limits, the card-state changelog's with state on, from one read of
    their configs (core.limits); the producer's own `client` limit for all of them when they
    cannot be read, or when `stopping` is set before the answer. With state on, a ConfigError
    when the changelog's cleanup policy could delete a live card's latest record
    (core.topics.state_topic_problem); PipelineError when Kafka does not answer."""
    topics = config.topics
    names = (topics.scores, topics.alerts, topics.deadletter) + ((topics.state,) if config.state else ())
    try:
        configs = read_topic_configs(admin_settings(config), names, stopping=stopping)
    except TimeoutError:
        raise PipelineError(f"{name}: cannot reach Kafka at {config.bootstrap_servers}: no answer in "
                            f"{CONFIGS_TIMEOUT_S:g} s") from None
    except KafkaException as exc:
        if exc.args[0].code() in _NO_ANSWER:   # librdkafka's own request timeout came first
            raise PipelineError(f"{name}: cannot reach Kafka at {config.bootstrap_servers}: "
                                f"{exc.args[0].str()}") from None
        # A missing topic is reported by check_topics next; without DescribeConfigs rights
        # the producer's own limit is all there is to go by.
        if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            log.warning("%s: cannot read max.message.bytes of the output topics (%s): assuming they accept "
                        "the producer's message.max.bytes %d%s", name, exc.args[0], client,
                        f"; not checking that {topics.state} is compacted" if config.state else "")
        return OutputLimits.uniform(topics, client)
    if configs is None:   # stopped: run() returns before it uses them
        return OutputLimits.uniform(topics, client)
    problem = state_topic_problem(topics.state, configs[topics.state]) if config.state else None
    if problem:
        raise ConfigError(problem)
    return output_limits_of(configs, client, batch_size)


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
                          f" ({config.topics.create_hint()})")
    unusable = [f"{n}: {found[n].error.str()}" for n in names if found[n].error is not None]
    if unusable:   # e.g. no leader during a failover, or not authorised: a Kafka failure
        raise PipelineError(f"topic(s) not usable on {config.bootstrap_servers}: {'; '.join(unusable)}")
    if config.state:   # partition p's state lives in partition p of the changelog
        n_in, n_state = (len(found[t].partitions) for t in (topics.transactions, topics.state))
        if n_state != n_in:
            raise ConfigError(f"topic {topics.state} has {n_state} partitions, {topics.transactions} "
                              f"{n_in}: the card-state changelog must be partitioned like the input")
