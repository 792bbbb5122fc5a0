"""Offsets moved back behind the card-state snapshot, on a real broker: the snapshot's state
already holds the records between the committed offset and the snapshot, so scoring them again
from it would count them twice. Under offset_reset refuse (the default) that partition is held
with an error naming both offsets while the others are scored; with earliest (the operator's
choice) it is scored from the snapshot's state, saying so."""

from __future__ import annotations

import logging
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.kafka.eos_harness import committed_offsets, make_inputs, produce_inputs
from tests.kafka.test_state_input_lost import FIRST, OTHER, _ids, _last_marker, _scored_ids, held_restart, score_all

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def test_offsets_moved_behind_the_snapshot_hold_that_partition(kafka_bootstrap, fresh_topics, caplog):
    names = fresh_topics("back")
    caplog.set_level(logging.INFO)
    data = make_inputs(FIRST, 0, seed=57, n_cards=30, span_s=3600.0)
    other = make_inputs(2 * OTHER, 0, seed=58, n_cards=30, span_s=3600.0, id_offset=10_000, card_offset=1_000)
    group = f"back-{uuid.uuid4().hex[:6]}"
    src = names.transactions

    # 1. Scored with state: one snapshot at S (the first transaction), committed offset X.
    produce_inputs(kafka_bootstrap, src, data, data.records, partition=0)
    produce_inputs(kafka_bootstrap, src, other, other.records[:OTHER], partition=1)
    score_all(kafka_bootstrap, names, group, FIRST + OTHER)
    s = _last_marker(kafka_bootstrap, names.state)
    assert 10 <= s < FIRST == committed_offsets(kafka_bootstrap, group, src, [0])[0], s

    # 2. While the group is away, an operator moves partition 0 back behind the snapshot.
    back = s - 10
    mover = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        mover.commit(offsets=[TopicPartition(src, 0, back)], asynchronous=False)
    finally:
        mover.close()
    assert committed_offsets(kafka_bootstrap, group, src, [0])[0] == back
    produce_inputs(kafka_bootstrap, src, other, other.records[OTHER:], partition=1)

    # 3. refuse (the default): partition 0 held, partition 1 scored, nothing of 0 again.
    held = held_restart(kafka_bootstrap, names, group, caplog, tries=2)
    why = (f"holds a card-state snapshot at input offset {s}, but the group's committed offset of {src}[0] is "
           f"{back}")
    assert len(held) >= 2 and all(why in line and "count the records in between twice" in line
                                  for line in held), held
    assert committed_offsets(kafka_bootstrap, group, src, [0])[0] == back
    scored = _scored_ids(kafka_bootstrap, names.scores)
    assert set(scored) == _ids(data.records) | _ids(other.records) and max(scored.values()) == 1

    # 4. earliest: the operator wants them scored again; from the snapshot's state, with a warning.
    caplog.clear()
    score_all(kafka_bootstrap, names, group, FIRST - back, offset_reset="earliest")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and why in r.getMessage()]
    assert warned and "scoring from the snapshot's state (offset_reset earliest)" in warned[0], warned
    scored = _scored_ids(kafka_bootstrap, names.scores)
    rescored = _ids(data.records[back:])
    assert {t for t, n in scored.items() if n == 2} == rescored and max(scored.values()) == 2
