"""What docs/exactly-once.md and docs/wire-contract.md promise by name and number, spelled out
here literally: the tests elsewhere import these constants, so renaming a header or dropping a
reserved key would fail nothing else."""

from core.config import RESERVED_KAFKA_KEYS, ScoringConfig
from core.routing import (H_HEADERS_DROPPED, H_KEY_TRUNCATED_FROM, H_REASON, H_SOURCE_OFFSET, H_SOURCE_PARTITION,
                          H_SOURCE_TOPIC, H_TRUNCATED_FROM)
from core.snapshot import MAX_STATE_RECORD_BYTES
from core.txn import consumer_settings, producer_settings


def test_dead_letter_header_names_are_the_wire_contracts():
    assert (H_REASON, H_SOURCE_TOPIC, H_SOURCE_PARTITION, H_SOURCE_OFFSET) == (
        "fraudstream.deadletter.reason", "fraudstream.source.topic", "fraudstream.source.partition",
        "fraudstream.source.offset")
    assert (H_TRUNCATED_FROM, H_HEADERS_DROPPED, H_KEY_TRUNCATED_FROM) == (
        "fraudstream.deadletter.truncated_from", "fraudstream.deadletter.headers_dropped",
        "fraudstream.deadletter.key_truncated_from")


def test_the_keys_the_guarantee_rests_on_are_refused_in_the_passthrough():
    documented = {"enable.auto.commit", "isolation.level", "enable.idempotence", "transactional.id",
                  "group.instance.id", "group.id", "bootstrap.servers", "enable.auto.offset.store"}
    assert documented <= set(RESERVED_KAFKA_KEYS)


def test_the_client_settings_are_the_documented_ones():
    config = ScoringConfig()
    consumer, producer = consumer_settings(config, 0), producer_settings(config, 0)
    assert {k: str(consumer[k]).lower() for k in (
        "enable.auto.commit", "isolation.level", "session.timeout.ms", "heartbeat.interval.ms",
        "partition.assignment.strategy", "topic.metadata.refresh.interval.ms")} == {
        "enable.auto.commit": "false", "isolation.level": "read_committed", "session.timeout.ms": "30000",
        "heartbeat.interval.ms": "1000", "partition.assignment.strategy": "roundrobin",
        "topic.metadata.refresh.interval.ms": "10000"}
    assert {k: str(producer[k]).lower() for k in (
        "enable.idempotence", "transaction.timeout.ms", "linger.ms", "retry.backoff.ms", "retry.backoff.max.ms",
        "delivery.report.only.error")} == {
        "enable.idempotence": "true", "transaction.timeout.ms": "30000", "linger.ms": "100",
        "retry.backoff.ms": "10", "retry.backoff.max.ms": "20", "delivery.report.only.error": "true"}


def test_the_largest_card_state_record_is_the_documented_size():
    assert MAX_STATE_RECORD_BYTES == 901_097   # docs/exactly-once.md: a worker refuses limits under it
