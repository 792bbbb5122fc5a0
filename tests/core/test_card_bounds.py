"""The per-card state stays bounded whatever the input: a record without a key is no card, a
card keeps at most MAX_CARD_EVENTS events, and no changelog record can outgrow the producer's
message limit. Live (CardStates.velocity on the loop's Messages) and replay (apply_input on the
raw records) give the same features and the same state, for any batch split. No Kafka."""

from __future__ import annotations

import json

import numpy as np
import pytest
from confluent_kafka import Message, Producer, TopicPartition

from core import _velocity_kernel as kernel
from core.cardbatch import apply_input
from core.cardstate import CardStates
from core.config import ScoringConfig
from core.decode import decode_batch
from core.errors import ConfigError, PipelineError
from core.limits import DEFAULT_MAX_MESSAGE_BYTES, RECORD_OVERHEAD
from core.snapshot import MARKER_KEY, MAX_STATE_RECORD_BYTES, check_state_limit, encode_marker, produce_snapshot
from core.velocity import (MAX_CARD_EVENTS, MAX_CARD_KEY_BYTES, MAX_STATE_VALUE_BYTES, VELOCITY_FEATURES,
                           CardStore, apply_bounded)

T0 = 1_767_225_600.0   # 2026-01-01T00:00:00Z
TX_24H = VELOCITY_FEATURES.index("card_tx_24h")
SINCE_PREV = VELOCITY_FEATURES.index("card_secs_since_prev")
HOT = MAX_CARD_EVENTS * 5 // 4 + MAX_CARD_EVENTS // 50 + 300   # rows; ~79 % the hot card's: over MAX_CARD_EVENTS


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint32)


def _first(t, amount, mcc) -> np.ndarray:
    """The features of each row as a card's first transaction."""
    return np.concatenate([CardStore().apply([b"x"], t[i:i + 1], amount[i:i + 1], mcc[i:i + 1])
                           for i in range(len(t))])


def _hot_stream(n: int = HOT, keyless_every: int = 97):
    """n transactions a second apart: one hot card, a few others, and keyless rows (b"")."""
    rng = np.random.default_rng(11)
    keys = [b"" if i % keyless_every == 5 else (b"hot" if i % 5 else b"c%d" % (i % 7)) for i in range(n)]
    t = T0 + np.arange(n, dtype=np.float64) + np.round(rng.random(n), 3)
    amount = rng.lognormal(3, 1, n).astype(np.float32)
    mcc = rng.integers(0, 5, n).astype(np.int64)
    return keys, t, amount, mcc


def _apply_split(store, stream, cuts):
    keys, t, amount, mcc = stream
    edges = [0, *cuts, len(keys)]
    return np.concatenate([apply_bounded(store, keys[a:b], t[a:b], amount[a:b], mcc[a:b])
                           for a, b in zip(edges, edges[1:])])


def test_keyless_rows_are_scored_with_no_history_and_leave_no_card():
    keys = [b"", b"a", b"", b"", b"a", b""]
    t = T0 + np.arange(6.0)
    amount = np.array([0.5, 2.0, 0.5, 3.0, 4.0, 0.25], dtype=np.float32)
    mcc = np.array([1, 2, 1, 3, 2, 1])
    store = CardStore()
    out = apply_bounded(store, keys, t, amount, mcc)
    none = [0, 2, 3, 5]
    np.testing.assert_array_equal(_bits(out[none]), _bits(_first(t[none], amount[none], mcc[none])))
    assert np.isnan(out[none, SINCE_PREV]).all() and out[[1, 4], TX_24H].tolist() == [1, 2]
    assert len(store) == 1 and [key for key, _ in store.changes()] == [b"a"]
    # a batch of keyless rows alone changes nothing at all, the watermark included
    empty = CardStore()
    apply_bounded(empty, [b""] * 3, t[:3], amount[:3], mcc[:3])
    assert len(empty) == 0 and np.isnan(empty.watermark) and empty.changes() == []


def _values(keys, t) -> list[bytes]:
    base = {"merchant_category": "grocery", **{f"V{k}": 0.0 for k in range(1, 29)}}
    out = []
    for i, ti in enumerate(t):
        secs = int(ti - T0)
        stamp = f"2026-01-01T{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}Z"
        out.append(json.dumps({**base, "transaction_id": f"t{i}", "card_hash": (keys[i] or b"-").decode(),
                               "amount": 1.0 + i % 13, "timestamp": stamp}).encode())
    return out


def test_live_and_replay_agree_on_keyless_records_and_a_full_card():
    """None keys through CardStates.velocity (the loop) and b"" through apply_input (the replay
    after a restore: core.snapshot.replay_input passes None as b"") leave the same store."""
    keys, t, _, _ = _hot_stream()
    values = _values(keys, t)
    msg_keys = [k or None for k in keys]
    live = CardStates(ScoringConfig(), "test")
    live._stores[0] = CardStore()
    feats = []
    for a, b in ((0, 4000), (4000, 4001), (4001, 9000), (9000, HOT)):
        msgs = [Message(topic="transactions", partition=0, offset=i, key=msg_keys[i], value=values[i])
                for i in range(a, b)]
        feats.append(live.velocity(None, msgs)(decode_batch(values[a:b]), values[a:b]))
    feats = np.concatenate(feats)
    replay = CardStore()
    for a in range(0, HOT, 3000):
        assert apply_input(replay, keys[a:a + 3000], values[a:a + 3000]) == len(values[a:a + 3000])
    got, want = dict(live._stores[0].changes()), dict(replay.changes())
    assert got == want and b"" not in got and len(got[b"hot"]) == MAX_STATE_VALUE_BYTES
    keyless = [i for i, k in enumerate(keys) if not k]
    assert keyless and (feats[keyless, TX_24H] == 1).all() and np.isnan(feats[keyless, SINCE_PREV]).all()
    assert feats[:, TX_24H].max() == MAX_CARD_EVENTS + 1


def test_a_full_card_keeps_max_events_identically_for_any_split_and_recovers():
    # the rule at a cap of 2,000 (CardStore's test-only max_events): at the service's 45,000 the
    # walk of a full card's events makes this a minute; test_live_and_replay_... uses that one
    cap = 2_000
    stream = _hot_stream(cap * 5 // 4 + cap // 50 + 300)
    keys, t, amount, mcc = stream
    whole = _apply_split(CardStore(max_events=cap), stream, [])
    for cuts in ([1], [777, 778, 1500], [cap - 3, cap + 1], list(range(100, len(keys), 100))):
        store = CardStore(cards=2, events=2, max_events=cap)
        np.testing.assert_array_equal(_bits(_apply_split(store, stream, cuts)), _bits(whole), err_msg=str(cuts))
    hot = [i for i, k in enumerate(keys) if k == b"hot"]
    # its (cap + 1)th transaction and every later one in the day see cap earlier events
    full = whole[hot, TX_24H]
    assert full.max() == cap + 1 and (full[cap:] == cap + 1).all()
    assert full[:cap].tolist() == list(range(1, cap + 1))
    # not kept: the next transaction's time since the previous one is from the last kept one
    last_kept = t[hot[cap - 1]]
    assert whole[hot[-1], SINCE_PREV] == np.float32(t[hot[-1]] - last_kept)
    records = dict(store.changes())
    assert len(records[b"hot"]) == kernel.HEAD_BYTES + cap * kernel.EVENT_BYTES
    # the day moves on: events older than 24 h drop out and the card takes new ones again
    later = np.array([last_kept + 86400.0 - 100.0, last_kept + 2 * 86400.0 - 150.0])
    out = apply_bounded(store, [b"hot", b"hot"], later, np.ones(2, np.float32), np.zeros(2, np.int64))
    first_kept = t[hot[0]]
    assert out[0, TX_24H] == 1 + sum(1 for i in hot[:cap] if t[i] > later[0] - 86400.0)
    assert 1 < out[0, TX_24H] < 200 and later[0] - 86400.0 > first_kept
    assert out[1, TX_24H] == 2   # only the one kept a day earlier is within 24 h
    assert len(dict(store.changes())[b"hot"]) == kernel.HEAD_BYTES + 2 * kernel.EVENT_BYTES


def test_a_hostile_hot_key_value_stays_far_under_the_message_limit():
    # 60,000 transactions on one key in 24 h made a 1,200,037-byte value: over librdkafka's
    # message.max.bytes, so every snapshot aborted its transaction and the worker restarted forever
    n = 60_000
    store = CardStore()
    apply_bounded(store, [b"hot"] * n, T0 + np.arange(n, dtype=np.float64), np.ones(n, np.float32),
                  np.zeros(n, np.int64))
    (key, value), = store.changes()
    assert key == b"hot" and len(value) == MAX_STATE_VALUE_BYTES
    assert RECORD_OVERHEAD + MAX_CARD_KEY_BYTES + len(value) == MAX_STATE_RECORD_BYTES < DEFAULT_MAX_MESSAGE_BYTES
    assert RECORD_OVERHEAD + len(MARKER_KEY) + 25 < MAX_STATE_RECORD_BYTES   # a marker is smaller
    # and it restores as written: the restored card goes on bit-identically
    again = CardStore()
    again.restore([(key, value)])
    more = ([b"hot"], np.array([T0 + n]), np.ones(1, np.float32), np.zeros(1, np.int64))
    np.testing.assert_array_equal(_bits(apply_bounded(again, *more)), _bits(apply_bounded(store, *more)))


def test_a_producer_or_topic_too_small_for_a_card_is_refused_at_start_up():
    check_state_limit("fraud-card-state", DEFAULT_MAX_MESSAGE_BYTES)
    check_state_limit("fraud-card-state", MAX_STATE_RECORD_BYTES)
    with pytest.raises(ConfigError, match=rf"fraud-card-state record can take {MAX_STATE_RECORD_BYTES:,} bytes "
                                          rf".* {MAX_CARD_EVENTS:,} events"
                                          rf".* than the {MAX_STATE_RECORD_BYTES - 1:,} .*message.max.bytes"):
        check_state_limit("fraud-card-state", MAX_STATE_RECORD_BYTES - 1)
    states = CardStates(ScoringConfig(), "w-0")
    with pytest.raises(ConfigError, match="max.message.bytes"):
        states.set_limit(100_000)
    assert states.limit == DEFAULT_MAX_MESSAGE_BYTES
    states.set_limit(MAX_STATE_RECORD_BYTES + 1)
    assert states.limit == MAX_STATE_RECORD_BYTES + 1


class _Sent(list):
    """What produce_snapshot hands a producer, in order (the producer itself is librdkafka's)."""

    def produce(self, topic, value, key, partition):
        self.append((topic, partition, key, value))


def test_a_record_over_the_limit_is_a_clear_error_before_anything_is_produced():
    producer = _Sent()
    records = [(b"a", b"x" * 50), (b"b", b"y" * 2000), (MARKER_KEY, b"m" * 25)]
    with pytest.raises(PipelineError, match=r"w-0: a card-state record for s\[3\] would take 2,037 bytes, over the "
                                            r"limit of 2,036 \(2 cards, 3,102 bytes in this snapshot\)"):
        produce_snapshot(producer, "s", 3, records, 2_036, "w-0")
    assert producer == []
    assert produce_snapshot(producer, "s", 3, records, 2_037, "w-0") == 3_102
    assert producer == [("s", 3, key, value) for key, value in records]


def test_a_full_cards_snapshot_goes_out_under_the_default_limit():
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "log_level": 0})
    states = CardStates(ScoringConfig(), "w-0")
    states._stores[0] = store = CardStore()
    n = MAX_CARD_EVENTS + 10
    apply_bounded(store, [b"k" * MAX_CARD_KEY_BYTES] * n, T0 + np.arange(n, dtype=np.float64),
                  np.ones(n, np.float32), np.zeros(n, np.int64))
    assert states.produce_changes(producer, [TopicPartition("transactions", 0, n)]) == 2   # the card, the marker
    marker = encode_marker(n, 0.0, 0, 0, states.model)   # its size: the format's and the model's name
    assert states.restore_stats.written_bytes == MAX_STATE_RECORD_BYTES - RECORD_OVERHEAD + len(MARKER_KEY) + len(marker)
    producer.purge()


@pytest.mark.parametrize("cap", [MAX_CARD_EVENTS, 100])
def test_one_batch_of_a_card_in_many_merchants_counts_them_all(cap):
    # the kernel lists the card's distinct merchants in a scratch array: sized by the cards'
    # events before the batch, one batch of a card in 500 merchants wrote past it (segfault)
    n = 500
    t, amount, mcc = T0 + np.arange(n, dtype=np.float64), np.ones(n, np.float32), np.arange(n) * 7919
    got = CardStore(max_events=cap).apply([b"hot"] * n, t, amount, mcc)
    mcc_24h = VELOCITY_FEATURES.index("card_mcc_24h")
    assert got[:, mcc_24h].tolist() == [min(i, cap) + 1 for i in range(n)]
    one_by_one = CardStore(max_events=cap)
    each = np.concatenate([one_by_one.apply([b"hot"], t[i:i + 1], amount[i:i + 1], mcc[i:i + 1]) for i in range(n)])
    np.testing.assert_array_equal(_bits(got), _bits(each))


@pytest.mark.parametrize("merchants", [31, 33, 300])
def test_cards_in_many_merchants_match_the_reference_for_any_split(merchants):
    # over LISTED (32) distinct merchants in a card's window the kernel hashes them; the count
    # is the same, and so are the bits, whatever the batch split
    from tests.core.velocity_ref import RefStore

    rng = np.random.default_rng(merchants)
    n = 3000
    keys = [b"c%d" % c for c in rng.integers(0, 3, n)]
    t = T0 + np.cumsum(rng.choice([0.0, 1.0, 30.0, 400.0], n))
    amount = rng.lognormal(3, 1, n).astype(np.float32)
    mcc = rng.integers(0, merchants, n).astype(np.int64) * -7919   # negative ids too
    mcc[::97] = kernel.EMPTY                                         # the hash table's free mark
    ref = RefStore(200).apply(keys, t, amount, mcc)
    top = ref[:, VELOCITY_FEATURES.index("card_mcc_24h")].max()   # EMPTY is one merchant more
    assert top > kernel.LISTED if merchants > 31 else top == kernel.LISTED
    for cuts in ([], [1, 2, 1500], list(range(7, n, 7))):
        got = _apply_split(CardStore(cards=2, events=2, max_events=200), (keys, t, amount, mcc), cuts)
        np.testing.assert_array_equal(_bits(got), _bits(ref), err_msg=str(cuts))
