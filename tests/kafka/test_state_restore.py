"""Restoring the per-card state from its changelog on a real broker: committed records only,
tombstones honoured, and an undecodable record is an error naming topic, partition, offset."""

from __future__ import annotations

import logging
import re
import time
import uuid

import numpy as np
import pytest
from confluent_kafka import Producer

from core.cardstate import CardStates
from core.config import ScoringConfig
from core.errors import StateError
from core.velocity import CardStore

pytestmark = pytest.mark.kafka
T0 = 1_767_225_600.0


def _changes(n: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    store = CardStore()
    keys = [b"card-%d" % i for i in range(start, start + n)]
    store.apply(keys, T0 + np.arange(n), np.ones(n, np.float32), np.zeros(n))
    return store.changes()


def _states(bootstrap, names) -> CardStates:
    return CardStates(ScoringConfig(bootstrap_servers=bootstrap, topics=names, group_id="g"), "test")


def _produce(bootstrap, topic, records, *, txn: str | None = None, abort: bool = False) -> list[int]:
    conf = {"bootstrap.servers": bootstrap}
    if txn:
        conf["transactional.id"] = txn
    p = Producer(conf)
    offsets = []
    if txn:
        p.init_transactions(30)
        p.begin_transaction()
    for key, value in records:
        p.produce(topic, value, key, 0, on_delivery=lambda err, msg: offsets.append(msg.offset()))
    p.flush(30)
    if txn:
        (p.abort_transaction if abort else p.commit_transaction)(30)
    return offsets


def test_restore_reads_committed_records_and_tombstones(kafka_bootstrap, fresh_topics, caplog):
    names = fresh_topics("restore")
    txn = f"restore-{uuid.uuid4().hex[:6]}"
    _produce(kafka_bootstrap, names.state, _changes(50), txn=txn)
    _produce(kafka_bootstrap, names.state, _changes(30, start=1000), txn=txn, abort=True)
    _produce(kafka_bootstrap, names.state, [(b"card-7", None), (b"card-8", None)], txn=txn)
    states = _states(kafka_bootstrap, names)
    try:
        with caplog.at_level(logging.INFO, logger="core.cardstate"):
            store = states._restore_one(0)
    finally:
        states.close()
    restored = [r.getMessage() for r in caplog.records if "restored" in r.getMessage()]
    assert restored and "read with Fetch v" in restored[-1], restored   # PLAINTEXT: the fast reader
    assert len(store) == 48   # 50 committed, 2 tombstoned, the aborted 30 never seen
    assert states.restore_stats.last_records == 52 and states.restore_stats.active == 0
    feats = store.apply([b"card-9", b"card-7", b"card-1000"], np.full(3, T0 + 100.0),
                        np.ones(3, np.float32), np.zeros(3))
    assert feats[:, 4].tolist() == [2, 1, 1]   # card-9 remembered, card-7 and card-1000 not


def test_undecodable_record_stops_the_restore_naming_where(kafka_bootstrap, fresh_topics):
    names = fresh_topics("restore-bad")
    good = _changes(5)
    offsets = _produce(kafka_bootstrap, names.state, good[:3] + [(b"card-x", b"\x01garbage")] + good[3:])
    states = _states(kafka_bootstrap, names)
    try:
        with pytest.raises(StateError) as info:
            states._restore_one(0)
    finally:
        states.close()
    where = f"{names.state}[0]@{sorted(offsets)[3]}"
    assert where in str(info.value), str(info.value)
    assert "undecodable card state" in str(info.value)


def test_a_service_holds_the_partition_of_an_undecodable_record_and_scores_the_others(
        kafka_bootstrap, fresh_topics, tmp_path):
    """The same record met by the service's loop (core.stateholds): input partition 0 is held,
    nothing of it scored and its committed offset unmoved, partition 1 is scored by the same
    worker, the log names topic[partition]@offset at each try, and the slot stays up."""
    from tests.kafka.eos_harness import Service, committed_offsets, finish, make_inputs, produce_inputs
    from tests.kafka.eos_harness import free_port
    from tests.kafka.test_state_input_lost import _ids, _scored_ids, score_all, wait_held_and_up

    names = fresh_topics("restore-held")
    src, n = names.transactions, 100
    held = make_inputs(2 * n, 0, seed=51, n_cards=30, span_s=3600.0)
    other = make_inputs(2 * n, 0, seed=52, n_cards=30, span_s=3600.0, id_offset=10_000, card_offset=1_000)
    group = f"held-{uuid.uuid4().hex[:6]}"
    # 1. Scored with state: a snapshot of each partition in the changelog, committed offset n.
    produce_inputs(kafka_bootstrap, src, held, held.records[:n], partition=0)
    produce_inputs(kafka_bootstrap, src, other, other.records[:n], partition=1)
    score_all(kafka_bootstrap, names, group, 2 * n)
    assert committed_offsets(kafka_bootstrap, group, src, [0, 1]) == {0: n, 1: n}
    # 2. A record no restore can decode after partition 0's snapshot; more input for both.
    bad = _produce(kafka_bootstrap, names.state, [(b"card-x", b"\x01garbage")])[0]
    where = f"{names.state}[0]@{bad}"
    produce_inputs(kafka_bootstrap, src, held, held.records[n:], partition=0)
    produce_inputs(kafka_bootstrap, src, other, other.records[n:], partition=1)
    # 3. The service, one worker for both partitions.
    port = free_port()
    svc = Service(kafka_bootstrap, names, group, tmp_path, workers=1, extra=("--metrics-port", str(port)))
    try:
        wait_held_and_up(svc, port)
        deadline = time.monotonic() + 60
        while (committed_offsets(kafka_bootstrap, group, src, [1])[1] < 2 * n
               or len(re.findall(rf"held \(paused.*{re.escape(where)}", _text(svc))) < 2):   # a retry held it again
            assert time.monotonic() < deadline and svc.proc.poll() is None, svc.tail()
            time.sleep(0.5)
        wait_held_and_up(svc, port)
        assert svc.stop() == 0, svc.tail()
    finally:
        finish(None, svc)
    log = _text(svc)
    assert f"undecodable card state at {where}" in log and "died with" not in log, svc.tail()
    # the worker's last line tells the state it stopped with (partition 1's cards), not the
    # emptied one after its consumer's close revoked the partitions (it said 0 cards)
    stopped = re.search(r": stopped\. .*\| state ([\d,]+) cards", log)
    assert stopped and int(stopped.group(1).replace(",", "")) > 0, svc.tail()
    scored = _scored_ids(kafka_bootstrap, names.scores)
    assert set(scored) == _ids(held.records[:n]) | _ids(other.records) and max(scored.values()) == 1, len(scored)
    assert committed_offsets(kafka_bootstrap, group, src, [0, 1]) == {0: n, 1: 2 * n}


def _text(svc) -> str:
    return svc.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def scorer():
    from tests.core.velocity_ref import stateless_model_path

    from core.scorer import Scorer

    return Scorer.load(stateless_model_path())


def test_restore_replays_the_input_since_the_snapshot(kafka_bootstrap, fresh_topics, scorer):
    """Scored by the real loop with one snapshot per partition (its first transaction), the
    state of every partition is rebuilt from that snapshot plus the replay of the input up to
    the committed offset: equal to the input applied undisturbed, dead letters skipped."""
    from confluent_kafka import Consumer

    from core.cardbatch import apply_input
    from core.txn import reader_settings
    from tests.core.test_snapshot import _live_cards
    from tests.kafka.eos_harness import make_inputs, produce_inputs
    from tests.kafka.kafka_io import read_all
    from tests.kafka.test_scoring_service import _score_until_drained

    names = fresh_topics("replay")
    inputs = make_inputs(3000, 40, 5, n_cards=100, span_s=3600.0)
    produce_inputs(kafka_bootstrap, names.transactions, inputs)
    group = f"replay-{uuid.uuid4().hex[:6]}"
    _score_until_drained(kafka_bootstrap, names, scorer, "replay", group=group, state_snapshot_s=3600.0,
                         batch_max_records=200)
    config = ScoringConfig(bootstrap_servers=kafka_bootstrap, topics=names, group_id=group)
    consumer = Consumer(reader_settings(config))
    states = CardStates(config, "test")
    parts = sorted(consumer.list_topics(names.transactions, timeout=30).topics[names.transactions].partitions)
    try:
        states._restore(consumer, parts)
        stale = {p: states._restore_one(p) for p in parts}   # the snapshot alone
    finally:
        states.close()
        consumer.close()
    assert states.restore_stats.replayed_total > 1000, states.restore_stats.replayed_total
    by_part: dict[int, list] = {p: [] for p in parts}
    for m in read_all(kafka_bootstrap, names.transactions, expect=len(inputs.records)):
        by_part[m.partition()].append(m)
    differs = 0
    for p in parts:
        msgs = sorted(by_part[p], key=lambda m: m.offset())
        ref = CardStore()
        apply_input(ref, [m.key() or b"" for m in msgs], [m.value() or b"" for m in msgs])
        assert _live_cards(states._stores[p]) == _live_cards(ref), f"partition {p}"
        differs += _live_cards(stale[p]) != _live_cards(ref)
    assert differs, "the snapshots alone already held the final state: nothing was replayed"


def test_a_marker_that_does_not_match_the_state_stops_the_restore(kafka_bootstrap, fresh_topics):
    from core.snapshot import MARKER_KEY, encode_marker

    names = fresh_topics("restore-marker")
    offsets = _produce(kafka_bootstrap, names.state, _changes(5) + [(MARKER_KEY, encode_marker(10, T0 + 99.0))])
    states = _states(kafka_bootstrap, names)
    try:
        with pytest.raises(StateError) as info:
            states._restore_one(0)
        assert "watermark" in str(info.value) and names.state in str(info.value)
        _produce(kafka_bootstrap, names.state, [(MARKER_KEY, b"\x01short")])
        with pytest.raises(StateError) as info:
            states._restore_one(0)
        assert f"undecodable snapshot marker at {names.state}[0]@{max(offsets) + 1}" in str(info.value)
    finally:
        states.close()
