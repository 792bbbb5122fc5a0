"""Kafka client defaults of the scoring loop that latency depends on."""

import pytest
from confluent_kafka import Producer

from core.config import ScoringConfig
from core.errors import ConfigError
from core.txn import producer_settings


def test_retry_backoff_is_capped_for_back_to_back_transactions():
    # CONCURRENT_TRANSACTIONS retries of the next transaction must not back off
    # exponentially towards librdkafka's 1 s default cap.
    settings = producer_settings(ScoringConfig(), 0)
    assert int(settings["retry.backoff.ms"]) <= int(settings["retry.backoff.max.ms"]) <= 50


def test_user_kafka_settings_override_the_defaults():
    cfg = ScoringConfig(kafka={"retry.backoff.max.ms": "250", "linger.ms": "1"})
    settings = producer_settings(cfg, 0)
    assert settings["retry.backoff.max.ms"] == "250"
    assert settings["linger.ms"] == "1"


def test_librdkafka_accepts_the_producer_defaults():
    # An unknown or out-of-range key raises KafkaException here (no broker needed).
    Producer(producer_settings(ScoringConfig(bootstrap_servers="127.0.0.1:1"), 0))


def _config_warnings(client_cls, settings) -> list[str]:
    import logging

    class Capture(logging.Handler):
        def __init__(self):
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    capture = Capture()
    logger = logging.getLogger(f"test-confwarn-{client_cls.__name__}")
    logger.addHandler(capture)
    client = client_cls({**settings, "logger": logger})
    client.poll(0.2)   # librdkafka's logs reach Python from poll()
    return [m for m in capture.messages if "CONFWARN" in m]


def test_one_passthrough_dict_configures_both_clients_without_warnings():
    from confluent_kafka import Consumer

    from core.txn import consumer_settings

    cfg = ScoringConfig(bootstrap_servers="127.0.0.1:1", kafka={
        "fetch.min.bytes": "262144", "fetch.wait.max.ms": "5", "max.partition.fetch.bytes": "8388608",
        "queued.min.messages": "200000", "linger.ms": "1", "batch.size": "2000000",
        "compression.type": "none", "acks": "all", "message.timeout.ms": "9000",
        "socket.keepalive.enable": "true"})
    consumer, producer = consumer_settings(cfg, 0), producer_settings(cfg, 0)
    assert "fetch.min.bytes" in consumer and "fetch.min.bytes" not in producer
    assert "linger.ms" in producer and "linger.ms" not in consumer
    assert consumer["socket.keepalive.enable"] == producer["socket.keepalive.enable"] == "true"
    assert _config_warnings(Producer, producer) == []
    assert _config_warnings(Consumer, consumer) == []


@pytest.mark.parametrize("value, expected", [("true", True), ("T", True), ("1", True),
                                             ("FALSE", False), ("f", False), ("0", False)])
def test_delivery_report_only_error_takes_librdkafkas_bool_spellings(value, expected):
    cfg = ScoringConfig(kafka={"delivery.report.only.error": value})
    assert producer_settings(cfg, 0)["delivery.report.only.error"] is expected


def test_delivery_report_only_error_that_is_no_bool_is_refused():
    """confluent-kafka reads this key in Python: 'maybe' used to mean false, silently."""
    with pytest.raises(ConfigError, match=r"kafka\.delivery\.report\.only\.error=maybe: expected true or false"):
        ScoringConfig(kafka={"delivery.report.only.error": "maybe"})


def test_the_producer_never_has_the_broker_create_a_missing_topic():
    """librdkafka's producer defaults to true: on a broker with auto.create.topics.enable a
    deleted fraud-card-state would come back with one partition and cleanup.policy=delete."""
    assert producer_settings(ScoringConfig(), 0)["allow.auto.create.topics"] == "false"


def test_a_users_value_of_a_key_of_both_clients_reaches_both():
    from core.txn import consumer_settings

    cfg = ScoringConfig(kafka={"topic.metadata.refresh.interval.ms": "60000", "allow.auto.create.topics": "true"})
    for settings in (producer_settings(cfg, 0), consumer_settings(cfg, 0)):
        assert settings["topic.metadata.refresh.interval.ms"] == "60000"
        assert settings["allow.auto.create.topics"] == "true"
