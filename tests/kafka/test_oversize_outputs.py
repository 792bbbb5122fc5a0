"""Chaos: one valid record whose outputs cannot be produced must not stop anything.

The broker accepts a record of up to ~1 MiB on `transactions`, but the scorer's outputs of it
(its key and headers, plus the scored fields) exceed the producer's 1,000,000-byte limit. Such
an input is dead-lettered once, in the transaction of its batch; the service stays up and every
partition keeps being scored. Each run ends with the read_committed exactly-once verdict.
"""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from core.routing import H_HEADERS_DROPPED, H_KEY_TRUNCATED_FROM, H_REASON, H_SOURCE_OFFSET
from tests.kafka.eos_harness import (SEQ, InProcess, Inputs, Service, committed_offsets, make_inputs, produce_inputs,
                                     verify, wait_drained)
from tests.kafka.kafka_io import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(400)]

BIG = 1_000_500


def _set_aside(inputs: Inputs, n: int) -> tuple[Inputs, list[tuple[bytes, bytes, int]]]:
    """The last n valid records become the special ones: expected as dead letters, not scores."""
    special = inputs.records[-n:]
    rest = Inputs(inputs.records[:-n], inputs.valid_ids[:-n], {seq for _, _, seq in special})
    return rest, special


def _produce_big(bootstrap: str, topic: str, inputs: Inputs, records: list[tuple[bytes, bytes, int, int, list]]):
    """(key, value, seq, partition, extra headers) each produced alone; remembers where they landed."""
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 2_000_000, "enable.idempotence": True})
    landed = []
    for key, value, seq, partition, extra in records:
        producer.produce(topic, value, key, partition=-1 if partition is None else partition,
                         headers=[(SEQ, str(seq).encode()), *extra], on_delivery=lambda err, msg: landed.append((err, msg.partition(), msg.offset(), msg.value())))
    assert producer.flush(30) == 0
    assert all(err is None for err, *_ in landed), landed   # the broker takes them on `transactions`
    for _, partition, offset, value in landed:
        inputs.hostile_coords[(partition, offset)] = value
    return [(p, o) for _, p, o, _ in landed]


def test_oversize_header_and_key_are_dead_lettered_once_and_the_service_stays_up(kafka_bootstrap, fresh_topics,
                                                                                  tmp_path):
    pytest.importorskip("core.scorer")
    names = fresh_topics("oversize")
    inputs, special = _set_aside(make_inputs(3002, 0, seed=17), 2)
    (key_a, value_a, seq_a), (_, value_b, seq_b) = special
    produce_inputs(kafka_bootstrap, names.transactions, inputs, inputs.records[:1000])
    group = f"oversize-{uuid.uuid4().hex[:6]}"
    # Two workers, three partitions each: a stuck worker would block two healthy partitions too.
    service = Service(kafka_bootstrap, names, group, tmp_path, workers=2)
    try:
        service.wait_workers(2)
        deadline = time.monotonic() + 120
        while not any(o > 0 for o in committed_offsets(kafka_bootstrap, group, names.transactions, range(6)).values()):
            assert time.monotonic() < deadline, f"no commit within 120 s:\n{service.tail()}"
            time.sleep(0.2)
        coords = _produce_big(kafka_bootstrap, names.transactions, inputs, [
            (key_a, value_a, seq_a, 0, [("pad", b"h" * BIG)]),      # a huge header
            (b"k" * BIG, value_b, seq_b, 1, []),                     # a huge key
        ])
        t0 = time.monotonic()
        produce_inputs(kafka_bootstrap, names.transactions, inputs, inputs.records[1000:])
        wait_drained(kafka_bootstrap, group, names.transactions, timeout=180, service=service)
        print(f"drained {time.monotonic() - t0:.1f} s after the oversize records")
        assert service.proc.poll() is None, service.tail()
        code = service.stop()
    finally:
        if service.proc.poll() is None:
            service.stop()
    log = service.log_path.read_text(errors="replace")
    assert code == 0, service.tail()
    assert "died with" not in log and "aborting transaction" not in log and "restarting" not in log, service.tail()
    assert log.count("is a dead letter: output_too_large") == 2, service.tail()

    v = verify(kafka_bootstrap, names, inputs)
    print(v)
    assert v.exactly_once(), v
    assert (v.scored, v.dead) == (3000, 2), v
    dead = {int(dict(m.headers())[H_SOURCE_OFFSET]): m for m in read_all(kafka_bootstrap, names.deadletter, expect=2)}
    by_partition = {p: dead[o] for p, o in coords}
    header_case, key_case = dict(by_partition[0].headers()), dict(by_partition[1].headers())
    assert header_case[H_REASON].startswith(f"output_too_large: {names.scores} 1,00".encode())
    assert header_case[H_REASON].endswith(b" > 1,000,000 bytes")
    assert header_case[H_HEADERS_DROPPED] == b"1" and "pad" not in header_case and by_partition[0].key() == key_a
    assert key_case[H_REASON].startswith(f"output_too_large: {names.scores} 1,00".encode())
    assert key_case[H_KEY_TRUNCATED_FROM] == str(BIG).encode() and by_partition[1].value() == value_b


def _score_then_alter_scores_topic(bootstrap, names, inputs, prefix, key, value) -> InProcess:
    """A ScoringConsumer that has scored the first 400 inputs; then fraud-scores' `key` is set."""
    scoring = InProcess(bootstrap, names, f"{prefix}-{uuid.uuid4().hex[:6]}", batch_max_records=500)
    produce_inputs(bootstrap, names.transactions, inputs, inputs.records[:400])
    scoring.wait_processed(400)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entry = ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
    for future in admin.incremental_alter_configs(
            [ConfigResource(ConfigResource.Type.TOPIC, names.scores, incremental_configs=[entry])]).values():
        future.result(30)
    time.sleep(2.0)   # let the new setting reach the partition leaders
    return scoring


def _verdict(bootstrap, names, inputs, scoring, caplog):
    """The exactly-once verdict after the run: every other input scored once, one dead letter.
    Returns the dead letter's reason and what the loop logged."""
    snap = scoring.metrics.snapshot()
    messages = [r.getMessage() for r in caplog.records]
    print(snap, *messages, sep="\n")
    assert snap.aborts >= 1 and snap.deadletters == 1 and snap.processed == len(inputs.valid_ids), snap
    assert any("refused for good" in m for m in messages), messages
    v = verify(bootstrap, names, inputs)
    print(v)
    assert v.exactly_once(), v
    (dead,) = read_all(bootstrap, names.deadletter, expect=1)
    return dict(dead.headers())[H_REASON].decode(), messages


def test_a_record_the_broker_refuses_after_start_up_is_found_and_dead_lettered(kafka_bootstrap, fresh_topics, caplog):
    """fraud-scores' max.message.bytes is lowered while the scorer runs, so its start-up limits
    let a too-large scored event through and the broker rejects it: the transaction aborts, the
    refused input is dead-lettered in the retry, every other record is scored - once."""
    names = fresh_topics("refused")
    inputs, special = _set_aside(make_inputs(2401, 0, seed=23), 1)
    (key_c, value_c, seq_c), = special
    caplog.set_level(logging.WARNING, logger="core.loop")
    scoring = _score_then_alter_scores_topic(kafka_bootstrap, names, inputs, "refused", "max.message.bytes", "600000")
    try:
        produce_inputs(kafka_bootstrap, names.transactions, inputs, inputs.records[400:1400])
        _produce_big(kafka_bootstrap, names.transactions, inputs, [(key_c, value_c, seq_c, 2, [("pad", b"p" * 700_000)])])
        produce_inputs(kafka_bootstrap, names.transactions, inputs, inputs.records[1400:])
        wait_drained(kafka_bootstrap, scoring.group, names.transactions, timeout=120)
    finally:
        scoring.stop()
    reason, _ = _verdict(kafka_bootstrap, names, inputs, scoring, caplog)
    assert reason.startswith(f"output_too_large: {names.scores} 70") and "MSG_SIZE_TOO_LARGE" in reason, reason


def test_a_rejected_batch_is_retried_record_by_record_and_only_the_culprit_is_dead_lettered(
        kafka_bootstrap, fresh_topics, caplog):
    """fraud-scores turns compacted while the scorer runs; a valid input without a key then makes
    the broker reject its whole output batch (INVALID_RECORD), innocent records included: they
    are retried each alone, and only the keyless one becomes a dead letter."""
    names = fresh_topics("compact")
    inputs, special = _set_aside(make_inputs(2401, 0, seed=29), 1)
    (_, value_n, seq_n), = special
    caplog.set_level(logging.WARNING, logger="core.loop")
    scoring = _score_then_alter_scores_topic(kafka_bootstrap, names, inputs, "compact", "cleanup.policy", "compact")
    try:
        # keyless, in the middle of a stream of keyed records, so that it shares an output batch
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 200})
        for key, value, seq in inputs.records[400:1400]:
            producer.produce(names.transactions, value, key, partition=0, headers=[(SEQ, str(seq).encode())])
        producer.flush(30)
        _produce_big(kafka_bootstrap, names.transactions, inputs, [(None, value_n, seq_n, 0, [])])
        for key, value, seq in inputs.records[1400:]:
            producer.produce(names.transactions, value, key, partition=0, headers=[(SEQ, str(seq).encode())])
        assert producer.flush(30) == 0
        wait_drained(kafka_bootstrap, scoring.group, names.transactions, timeout=180)
    finally:
        scoring.stop()
    reason, messages = _verdict(kafka_bootstrap, names, inputs, scoring, caplog)
    assert any("retrying each alone" in m for m in messages), messages
    assert reason == f"produce_failed: {names.scores}: INVALID_RECORD"
