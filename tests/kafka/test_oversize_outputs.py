"""Chaos: one valid record whose outputs cannot be produced must not stop anything.

The broker accepts a record of up to ~1 MiB on `transactions`, but the scorer's outputs of it
(its key and headers, plus the scored fields) exceed the producer's 1,000,000-byte limit. Such
an input is dead-lettered once, in the transaction of its batch; the service stays up and every
partition keeps being scored. Each run ends with the read_committed exactly-once verdict.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from core.limits import describe_topic_configs
from core.routing import H_HEADERS_DROPPED, H_KEY_TRUNCATED_FROM, H_REASON, H_SOURCE_OFFSET
from tests.kafka.eos_harness import (InProcess, Inputs, Service, make_inputs, produce_inputs, verify, wait_drained,
                                     wait_first_commit)
from tests.kafka.kafka_io import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(400)]

BIG = 1_000_500


def _set_aside(inputs: Inputs, n: int) -> tuple[Inputs, list[tuple[bytes, bytes, int]]]:
    """The last n valid records become the special ones: expected as dead letters, not scores."""
    special = inputs.records[-n:]
    rest = Inputs(inputs.records[:-n], inputs.valid_ids[:-n], {seq for _, _, seq in special})
    return rest, special


def test_oversize_header_and_key_are_dead_lettered_once_and_the_service_stays_up(kafka_bootstrap, fresh_topics,
                                                                                  tmp_path):
    names = fresh_topics("oversize")
    inputs, special = _set_aside(make_inputs(3002, 0, seed=17), 2)
    (key_a, value_a, seq_a), (_, value_b, seq_b) = special
    produce_inputs(kafka_bootstrap, names.transactions, inputs, inputs.records[:1000])
    group = f"oversize-{uuid.uuid4().hex[:6]}"
    # Two workers, three partitions each: a stuck worker would block two healthy partitions too.
    service = Service(kafka_bootstrap, names, group, tmp_path, workers=2)
    try:
        service.wait_workers(2)
        wait_first_commit(kafka_bootstrap, group, names.transactions, service)
        # the broker takes both on `transactions` (its limit is 1,048,588)
        produce_inputs(kafka_bootstrap, names.transactions, inputs, [(key_a, value_a, seq_a)], partition=0,
                       headers=(("pad", b"h" * BIG),))                      # a huge header
        produce_inputs(kafka_bootstrap, names.transactions, inputs, [(b"k" * BIG, value_b, seq_b)], partition=1)
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
    # each warning names where its input is: the huge header's on partition 0, the huge key's on 1
    where = re.findall(rf"{re.escape(names.transactions)}\[(\d)\]@\d+ is a dead letter: output_too_large", log)
    assert sorted(where) == ["0", "1"], where

    v = verify(kafka_bootstrap, names, inputs)
    print(v)
    assert v.exactly_once(), v
    assert (v.scored, v.dead) == (3000, 2), v
    dead = {int(dict(m.headers())[H_SOURCE_OFFSET]): m for m in read_all(kafka_bootstrap, names.deadletter, expect=2)}
    by_partition = {p: dead[o] for p, o in inputs.hostile_coords}
    header_case, key_case = dict(by_partition[0].headers()), dict(by_partition[1].headers())
    assert header_case[H_REASON].startswith(f"output_too_large: {names.scores} 1,00".encode())
    assert header_case[H_REASON].endswith(b" > 1,000,000 bytes")
    assert header_case[H_HEADERS_DROPPED] == b"1" and "pad" not in header_case and by_partition[0].key() == key_a
    assert key_case[H_REASON].startswith(f"output_too_large: {names.scores} 1,00".encode())
    assert key_case[H_KEY_TRUNCATED_FROM] == str(BIG).encode() and by_partition[1].value() == value_b


def _too_large_for_the_new_limit(bootstrap, names, inputs, special):
    produce_inputs(bootstrap, names.transactions, inputs, inputs.records[400:1400])
    produce_inputs(bootstrap, names.transactions, inputs, special, partition=2, headers=(("pad", b"p" * 700_000),))
    produce_inputs(bootstrap, names.transactions, inputs, inputs.records[1400:])


def _keyless_among_keyed(bootstrap, names, inputs, special):
    # in the middle of a stream of keyed records on one partition, so that it shares an output batch
    (_, value, seq), = special
    for records in (inputs.records[400:1400], [(None, value, seq)], inputs.records[1400:]):
        produce_inputs(bootstrap, names.transactions, inputs, records, partition=0)


@pytest.mark.parametrize("setting, feed, expected", [
    # max.message.bytes lowered while the scorer runs: its start-up limits let a too-large scored
    # event through and the broker rejects it
    (("max.message.bytes", "600000"), _too_large_for_the_new_limit, "output_too_large: {scores} 70"),
    # fraud-scores turns compacted: a valid input without a key makes the broker reject its whole
    # output batch (INVALID_RECORD), with the innocent records that share it when the timing puts
    # some there (then "retrying each alone" is logged; core.culprits' unit tests pin that path)
    (("cleanup.policy", "compact"), _keyless_among_keyed, "produce_failed: {scores}: INVALID_RECORD"),
], ids=["size", "compacted"])
def test_a_record_the_broker_refuses_after_start_up_is_found_and_dead_lettered(
        kafka_bootstrap, fresh_topics, caplog, setting, feed, expected):
    """The transaction aborts, the record that fails alone is dead-lettered in a retry, every other
    record is scored - once."""
    names = fresh_topics("refused")
    inputs, special = _set_aside(make_inputs(2401, 0, seed=23), 1)
    caplog.set_level(logging.WARNING, logger="core.loop")
    scoring = InProcess(kafka_bootstrap, names, f"refused-{uuid.uuid4().hex[:6]}", batch_max_records=500)
    try:
        produce_inputs(kafka_bootstrap, names.transactions, inputs, inputs.records[:400])
        scoring.wait_processed(400)
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        entry = ConfigEntry(*setting, incremental_operation=AlterConfigOpType.SET)
        for future in admin.incremental_alter_configs(
                [ConfigResource(ConfigResource.Type.TOPIC, names.scores, incremental_configs=[entry])]).values():
            future.result(30)
        # The controller has it; the (single) broker answers DescribeConfigs from the metadata
        # image it applies topic settings from, right after it made that image current.
        deadline = time.monotonic() + 30
        while describe_topic_configs(admin, (names.scores,))[names.scores][setting[0]] != setting[1]:
            assert time.monotonic() < deadline, f"{setting[0]}={setting[1]} never reached the broker"
            time.sleep(0.1)
        time.sleep(0.5)   # the logs take the new image's settings just after it is made current
        feed(kafka_bootstrap, names, inputs, special)
        wait_drained(kafka_bootstrap, scoring.group, names.transactions, timeout=180)
    finally:
        scoring.stop()
    snap = scoring.metrics.snapshot()
    messages = [r.getMessage() for r in caplog.records]
    print(snap, *messages, sep="\n")
    assert snap.aborts >= 1 and snap.deadletters == 1 and snap.processed == len(inputs.valid_ids), snap
    assert any("refused for good" in m for m in messages), messages
    v = verify(kafka_bootstrap, names, inputs)
    print(v)
    assert v.exactly_once(), v
    (dead,) = read_all(kafka_bootstrap, names.deadletter, expect=1)
    assert dict(dead.headers())[H_REASON].decode().startswith(expected.format(scores=names.scores))
