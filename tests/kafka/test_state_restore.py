"""Restoring the per-card state from its changelog on a real broker: committed records only,
tombstones honoured, and an undecodable record is an error naming topic, partition, offset."""

from __future__ import annotations

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


def test_restore_reads_committed_records_and_tombstones(kafka_bootstrap, fresh_topics):
    names = fresh_topics("restore")
    txn = f"restore-{uuid.uuid4().hex[:6]}"
    _produce(kafka_bootstrap, names.state, _changes(50), txn=txn)
    _produce(kafka_bootstrap, names.state, _changes(30, start=1000), txn=txn, abort=True)
    _produce(kafka_bootstrap, names.state, [(b"card-7", None), (b"card-8", None)], txn=txn)
    states = _states(kafka_bootstrap, names)
    try:
        store = states._restore_one(0)
    finally:
        states.close()
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
