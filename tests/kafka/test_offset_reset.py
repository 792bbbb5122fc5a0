"""No silent re-emission: a group that has committed before and finds its offset missing or out
of range does not re-score from the earliest record unless the operator said so (offset_reset).

Real broker: the offset is pushed out of range with DeleteRecords, and lost by deleting the
group. Each case ends with the read_committed exactly-once verdict over what should be scored.
"""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import REGISTRY

from tests.kafka.eos_harness import InProcess, committed_offsets, make_inputs, produce_inputs, verify, wait_drained

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

REFUSED = "fraudstream_offset_reset_refused_total"
PAUSED = "fraudstream_offset_reset_paused_partitions"


def _refused() -> float:
    return REGISTRY.get_sample_value(REFUSED) or 0.0


def _score(bootstrap, names, group, n, **settings):
    scoring = InProcess(bootstrap, names, group, batch_max_records=50, **settings)
    try:
        scoring.wait_processed(n)
        wait_drained(bootstrap, group, names.transactions, timeout=60)
    finally:
        scoring.stop()


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def _scored_quietly(bootstrap, names, group, caplog, data, n):
    """The group scores n records without refusing a partition or logging an error, and the
    outputs hold every record of data exactly once."""
    before = _refused()
    _score(bootstrap, names, group, n)
    assert _refused() == before
    assert not _errors(caplog)
    v = verify(bootstrap, names, data)
    print(v)
    assert v.exactly_once() and v.scored == len(data.records), v


def _stays_paused(bootstrap, names, group, caplog, seconds=8.0, scores=0, **settings):
    """Run the group until it logged an error (60 s at most) and for `seconds` at least; it must
    score `scores` records (those of other partitions), no more. Returns the error lines it logged. (A fixed `seconds` assumed the consumer
    joined and judged its offsets within it: on a loaded broker a committed() call alone can
    take over 10 s, see eos_harness.wait_drained.)"""
    caplog.clear()
    scoring = InProcess(bootstrap, names, group, batch_max_records=50, **settings)
    t0 = time.monotonic()
    try:
        while not _errors(caplog) and time.monotonic() - t0 < 60:
            assert scoring.thread.is_alive(), scoring.errors
            time.sleep(0.1)
        print(f"first error after {time.monotonic() - t0:.1f} s")
        time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
        assert scoring.thread.is_alive(), scoring.errors
        assert REGISTRY.get_sample_value(PAUSED) >= 1   # what /healthz reads: the partition is paused now
    finally:
        scoring.stop()
    assert REGISTRY.get_sample_value(PAUSED) == 0   # a stopped loop pauses nothing
    assert scoring.metrics.snapshot().processed == scores, scoring.metrics.snapshot()
    return _errors(caplog)


def test_an_offset_behind_the_log_start_pauses_the_partition_until_the_operator_chooses(
        kafka_bootstrap, fresh_topics, caplog):
    names = fresh_topics("oor")
    caplog.set_level(logging.INFO)
    data = make_inputs(230, 0, seed=31)
    group = f"oor-{uuid.uuid4().hex[:6]}"
    produce_inputs(kafka_bootstrap, names.transactions, data, data.records[:100], partition=0)
    _score(kafka_bootstrap, names, group, 100)
    assert committed_offsets(kafka_bootstrap, group, names.transactions, [0])[0] == 100

    # While the group is away, retention removes records it never read: 100..149; and
    # partition 1 gets input of its own, which the paused partition must not hold up.
    produce_inputs(kafka_bootstrap, names.transactions, data, data.records[100:200], partition=0)
    produce_inputs(kafka_bootstrap, names.transactions, data, data.records[200:], partition=1)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.delete_records([TopicPartition(names.transactions, 0, 150)]).values():
        future.result(30)

    before = _refused()
    errors = _stays_paused(kafka_bootstrap, names, group, caplog, scores=30)
    print(*errors, sep="\n")
    assert len(errors) == 1 and f"{names.transactions}[0]" in errors[0] and "paused" in errors[0], errors
    assert "offset_reset: earliest | latest" in errors[0]
    assert _refused() == before + 1
    # partition 0 did not move, partition 1 was scored to its end meanwhile
    assert committed_offsets(kafka_bootstrap, group, names.transactions, [0, 1]) == {0: 100, 1: 30}

    _score(kafka_bootstrap, names, group, 50, offset_reset="earliest")   # the operator's choice
    v = verify(kafka_bootstrap, names, data)
    print(v)
    # everything once, except the 50 records retention deleted before anyone read them
    assert (v.scored, v.missing, v.duplicates, v.unexpected, v.mispaired, v.alert_mismatch) == (180, 50, 0, 0, 0, 0), v


def test_a_group_whose_offsets_are_gone_does_not_rescore_what_it_already_scored(kafka_bootstrap, fresh_topics, caplog):
    names = fresh_topics("gone")
    caplog.set_level(logging.INFO)
    data = make_inputs(120, 0, seed=37)
    group = f"gone-{uuid.uuid4().hex[:6]}"
    produce_inputs(kafka_bootstrap, names.transactions, data, data.records[:100])
    # dynamic membership: a static member keeps the group non-empty for its session timeout
    _score(kafka_bootstrap, names, group, 100, static_membership=False)
    # offsets.retention.minutes after the group emptied - or an operator deleting the group
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.delete_consumer_groups([group], request_timeout=30).values():
        future.result(30)

    before = _refused()
    errors = _stays_paused(kafka_bootstrap, names, group, caplog)
    print(*errors, sep="\n")
    assert len(errors) == 1 and "the group has no committed offsets for them" in errors[0], errors
    assert f"{names.transactions}[0, 1, 2, 3, 4, 5]" in errors[0], errors
    assert _refused() == before + 6

    # The operator chooses: only what arrives from now on.
    scoring = InProcess(kafka_bootstrap, names, group, batch_max_records=50, offset_reset="latest")
    try:
        deadline = time.monotonic() + 60
        while not scoring.consumer._assigned:   # "latest" must be resolved before the new input lands
            assert time.monotonic() < deadline and scoring.thread.is_alive(), scoring.errors
            time.sleep(0.1)
        # A fixed wait: librdkafka resolves "latest" on its first fetch, and nothing shows it from
        # here - position() stays unset until a record is delivered, and asking the consumer for
        # its cached watermarks from this thread blocks while the loop is inside consume().
        time.sleep(3.0)
        produce_inputs(kafka_bootstrap, names.transactions, data, data.records[100:])
        scoring.wait_processed(20)
        wait_drained(kafka_bootstrap, group, names.transactions, timeout=60)
    finally:
        scoring.stop()
    v = verify(kafka_bootstrap, names, data)
    print(v)
    assert v.exactly_once() and v.scored == 120, v


def test_a_new_group_and_its_never_used_partitions_start_at_the_beginning_quietly(kafka_bootstrap, fresh_topics,
                                                                                  caplog):
    names = fresh_topics("fresh")
    caplog.set_level(logging.INFO)
    data = make_inputs(60, 0, seed=41)
    group = f"fresh-{uuid.uuid4().hex[:6]}"
    produce_inputs(kafka_bootstrap, names.transactions, data, data.records[:30], partition=0)          # partition 0 only
    _score(kafka_bootstrap, names, group, 30)
    # Partitions 1..5 never had a record, so the group never committed them: records arriving
    # there now are read from their beginning, without an error.
    produce_inputs(kafka_bootstrap, names.transactions, data, data.records[30:], partition=3)
    _scored_quietly(kafka_bootstrap, names, group, caplog, data, 30)


def test_outputs_holding_only_an_aborted_transaction_do_not_refuse_a_new_group(kafka_bootstrap, fresh_topics,
                                                                                caplog):
    # A group whose first transaction aborted (a worker killed, a fault) committed no offset,
    # and its outputs hold records no read_committed reader sees. That is no proof of scores
    # already out: the group starts at the beginning rather than stay paused for good.
    names = fresh_topics("aborted")
    caplog.set_level(logging.INFO)
    data = make_inputs(40, 0, seed=43)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"t-{uuid.uuid4().hex[:6]}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for p in range(3):
        producer.produce(names.scores, b'{"transaction_id": "never"}', b"k", partition=p)
    producer.flush(30)
    producer.abort_transaction(30)
    probe = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "probe"})
    try:   # the high watermark moved: by it alone, the outputs hold records
        assert probe.get_watermark_offsets(TopicPartition(names.scores, 0), timeout=10)[1] > 0
    finally:
        probe.close()
    produce_inputs(kafka_bootstrap, names.transactions, data)
    _scored_quietly(kafka_bootstrap, names, f"aborted-{uuid.uuid4().hex[:6]}", caplog, data, 40)
