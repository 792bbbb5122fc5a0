"""Kafka client defaults of the scoring loop that latency depends on."""

from confluent_kafka import Producer

from core.config import ScoringConfig
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
