"""Partitions added to the input while `python -m core` runs, on a real broker.

A producer puts a card in partition hash(card) % partitions: after 6 -> 8, most cards' next
transactions land in another partition than their history, and scoring them from the old
partitions' state would silently give wrong velocity features. The running service notices
the new count at its next metadata refresh (a rebalance restores every partition) and holds
each partition whose last snapshot was written at 6 partitions, with an error naming both
counts and the way to start the state anew; what it had scored before stays exactly once.
Before markers recorded the count, partitions 0-5 went on scoring from the old state.
"""

from __future__ import annotations

import re
import time
import uuid

import msgspec
import pytest
from confluent_kafka.admin import AdminClient, NewPartitions

from tests.kafka.eos_harness import Service, committed_offsets, end_offsets, make_inputs, produce_inputs, \
    produce_tracked, verify, wait_drained
from tests.kafka.kafka_io import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

BEFORE, AFTER = 3000, 1500


def test_partitions_added_while_running_hold_the_partitions_built_on_fewer(kafka_bootstrap, fresh_topics, tmp_path):
    names = fresh_topics("repart")
    group = f"repart-{uuid.uuid4().hex[:6]}"
    first = make_inputs(BEFORE, 0, seed=71, n_cards=400, span_s=3600.0)
    later = make_inputs(AFTER, 0, seed=72, n_cards=400, span_s=3600.0, id_offset=100_000)
    produce_inputs(kafka_bootstrap, names.transactions, first)
    with Service(kafka_bootstrap, names, group, tmp_path, workers=1) as svc:
        wait_drained(kafka_bootstrap, group, names.transactions, timeout=120, service=svc)
        before = committed_offsets(kafka_bootstrap, group, names.transactions, range(6))

        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        for topic in (names.transactions, names.state):   # as an operator would: both, alike
            admin.create_partitions([NewPartitions(topic, 8)])[topic].result(30)
        # Records a producer sends under the new count before the service has noticed it are scored from
        # the old state: that window is the consumer's metadata refresh (10 s; librdkafka's default 5 min
        # failed here). After it, none may be.
        deadline = time.monotonic() + 30
        while "revoked [0, 1, 2, 3, 4, 5]" not in svc.log_path.read_text():
            assert time.monotonic() < deadline, f"the new partitions not noticed:\n{svc.tail(60)}"
            time.sleep(0.2)
        landed = produce_tracked(kafka_bootstrap, names.transactions, later.records)
        old = {seq for seq, p in landed.items() if p < 6}
        assert len(old) > AFTER // 2, landed   # most cards now go to partitions 0-5 under the new count
        busy = {p for p in landed.values() if p < 6}

        held: set[int] = set()
        deadline = time.monotonic() + 90
        while held < busy:
            assert time.monotonic() < deadline, f"partitions {sorted(busy - held)} not held:\n{svc.tail(60)}"
            assert svc.proc.poll() is None, svc.tail(60)
            time.sleep(0.5)
            held = {int(p) for p in re.findall(
                r"\.transactions\[(\d)\] held \(paused.*: \S+\.transactions has 8 partitions, but the card state in "
                r"\S+\.fraud-card-state\[\1\] was built when it had 6", svc.log_path.read_text())}
        # the new partitions have no snapshot: scored, from empty state, to their end
        ends = end_offsets(kafka_bootstrap, names.transactions)
        deadline = time.monotonic() + 60
        while {p: max(0, o) for p, o in committed_offsets(kafka_bootstrap, group, names.transactions,
                                                           (6, 7)).items()} != {p: ends[p] for p in (6, 7)}:
            assert time.monotonic() < deadline, f"partitions 6 and 7 not scored to their end:\n{svc.tail(60)}"
            time.sleep(0.5)
        time.sleep(3)   # a partition scored from the old state would have committed by now
        assert committed_offsets(kafka_bootstrap, group, names.transactions, range(6)) == before
        line = next(x for x in svc.log_path.read_text().splitlines() if "was built when it had 6" in x)
        assert "delete " + names.state + " and create it with 8 partitions and cleanup.policy=compact" in line, line
        assert svc.stop() == 0
    log = svc.log_path.read_text()
    assert "Traceback" not in log and "died with exit code" not in log, svc.tail(60)

    # Everything scored before the change: exactly once. Of what came after, nothing from 0-5.
    verdict = verify(kafka_bootstrap, names, first)
    later_ids = {later.valid_ids[seq] for seq in old}
    assert not (verdict.duplicates or verdict.missing or verdict.mispaired), verdict
    assert verdict.unexpected <= AFTER - len(old), verdict   # only those of the new partitions 6 and 7
    decode = msgspec.json.Decoder().decode
    events = [decode(m.value()) for m in read_all(kafka_bootstrap, names.scores, idle_s=2.0)]
    scored = {e["transaction_id"] for e in events}
    assert not scored & later_ids
    new_ids = {later.valid_ids[seq] for seq, p in landed.items() if p >= 6}
    assert new_ids and new_ids <= scored and verdict.unexpected == len(new_ids), (len(new_ids), verdict)
    # each card's first transaction on a new partition saw no history (fraud-scores keeps each
    # partition's order: a card's records come in the order they were scored)
    firsts: dict[str, dict] = {}
    for e in events:
        if e["transaction_id"] in new_ids:
            firsts.setdefault(e["card_hash"], e["card"])
    assert firsts and all(card["secs_since_prev"] is None and card["tx_24h"] == 1 for card in firsts.values())
    assert sum(end_offsets(kafka_bootstrap, names.transactions).values()) == BEFORE + AFTER
