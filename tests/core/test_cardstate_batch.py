"""CardStates' per-batch work without Kafka: the velocity function it builds from the loop's
Messages, and how often the batches set the state's gauges."""

from __future__ import annotations

import json

import numpy as np
import pytest
from confluent_kafka import Message, Producer, TopicPartition
from prometheus_client import REGISTRY

import core.cardstate as cardstate
from core.cardbatch import batch_velocity
from core.cardstate import CardStates
from core.config import ScoringConfig
from core.decode import decode_batch
from core.velocity import CardStore


def _values(n: int, cards: list[str]) -> list[bytes]:
    tx = {"amount": 2.5, "merchant_category": "grocery", **{f"V{k}": 0.0 for k in range(1, 29)}}
    return [json.dumps({**tx, "transaction_id": f"t{i}", "card_hash": cards[i % len(cards)],
                        "timestamp": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z"}).encode() for i in range(n)]


def _states(partitions, interval: float = 3600.0) -> CardStates:
    states = CardStates(ScoringConfig(state_snapshot_s=interval), "test")
    for p in partitions:   # what a restore of an empty changelog leaves
        states._stores[p] = CardStore()
        states._due[p] = 0.0
    return states


def _messages(values, parts, keys) -> list[Message]:
    return [Message(topic="transactions", partition=p, offset=i, key=k, value=v)
            for i, (v, p, k) in enumerate(zip(values, parts, keys))]


def test_velocity_of_messages_is_batch_velocity_of_their_partitions_and_keys():
    values = _values(12, ["a", "b"])
    parts = [0, 0, 1, 1, 1, 0, 2, 2, 0, 1, 2, 0]
    keys = [b"a", b"b", b"a", None, b"a", b"b", None, b"b", b"a", b"b", b"a", None]
    d = decode_batch(values)
    got = _states((0, 1, 2)).velocity(None, _messages(values, parts, keys))(d, values)
    want = batch_velocity({p: CardStore() for p in (0, 1, 2)}, np.array(parts, np.int64),
                          [k or b"" for k in keys])(d, values)   # a record without a key: b"", no card
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert got[:, 0].tolist() == [1, 1, 1, 1, 2, 2, 1, 1, 2, 1, 1, 1]


def _cards_gauge() -> float:
    return REGISTRY.get_sample_value("fraudstream_state_cards")


def test_batches_set_the_gauges_at_most_every_publish_interval_and_close_sets_them(monkeypatch):
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "log_level": 0})
    states = _states((0,))
    values = _values(6, ["a", "b", "c", "d", "e", "f"])
    offsets = [TopicPartition("transactions", 0, 3)]
    msgs = _messages(values, [0] * 6, [v.split(b'"card_hash": "')[1][:1] for v in values])

    states.velocity(None, msgs[:3])(decode_batch(values[:3]), values[:3])
    states.produce_changes(producer, offsets)           # the first batch publishes
    assert _cards_gauge() == 3
    states.velocity(None, msgs[3:])(decode_batch(values[3:]), values[3:])
    states.produce_changes(producer, offsets)           # within _PUBLISH_S: not yet
    assert _cards_gauge() == 3 and states.cards() == 6
    monkeypatch.setattr(cardstate, "_PUBLISH_S", 0.0)
    states._publish()                                    # sets the next due time from _PUBLISH_S
    states.drop([0])
    states.produce_changes(producer, [])                 # due: the state as it is now
    assert _cards_gauge() == 0
    monkeypatch.setattr(cardstate, "_PUBLISH_S", 3600.0)
    states._publish()
    states._stores[0] = CardStore()
    states._stores[0].apply([b"z"], np.array([1.0]), np.array([1.0], np.float32), np.array([7]))
    states.produce_changes(producer, [])
    assert _cards_gauge() == 0
    states.close()                                       # the final figures
    assert _cards_gauge() == 1
    producer.purge()


@pytest.mark.parametrize("interval", [0.0, 3600.0])
def test_a_partitions_first_batch_writes_a_snapshot_whatever_the_gauges(interval):
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "log_level": 0})
    states = _states((0, 1), interval)
    values = _values(4, ["a", "b"])
    msgs = _messages(values, [0, 0, 1, 1], [b"a", b"b", b"a", b"b"])
    states.velocity(None, msgs)(decode_batch(values), values)
    offsets = [TopicPartition("transactions", 0, 2), TopicPartition("transactions", 1, 4)]
    assert states.produce_changes(producer, offsets) == 2 * (2 + 1)   # 2 cards + a marker each
    assert states.produce_changes(producer, offsets) == (2 if interval == 0.0 else 0)   # markers alone
    producer.purge()
