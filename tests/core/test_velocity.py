"""core.velocity: the per-card kernel against a plain-Python reference, bit for bit, for any
batch split; the changelog round trip; bounded state; the bad-time policy."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.velocity import (MAX_CARD_EVENTS, MAX_CARD_KEY_BYTES, CardStore, StateRecordError, VELOCITY_FEATURES, apply_bounded,
                           epoch_seconds, merchant_id)
from tests.core.velocity_ref import RefStore

H = 86400.0
T0 = 1_767_225_600.0   # 2026-01-01T00:00:00Z


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint32)


def _stream(seed: int, n: int, cards: int = 50):
    """Keys, times, amounts, merchants: bursts, out-of-order times, bad clocks, idle gaps."""
    rng = np.random.default_rng(seed)
    keys = [b"card-%d" % k for k in rng.integers(0, cards, n)]
    steps = rng.choice([0.0, 0.5, 7.0, 45.0, 900.0, 5000.0], size=n, p=[.1, .3, .2, .2, .15, .05])
    t = T0 + np.cumsum(steps)
    jitter = rng.choice([0.0, -30.0, -4000.0, -2 * H, 3 * H], size=n, p=[.8, .1, .05, .03, .02])
    t = t + jitter + np.round(rng.random(n), 3)
    amount = np.where(rng.random(n) < 0.3, rng.random(n), rng.lognormal(3, 1.5, n)).astype(np.float32)
    mcc = rng.integers(0, 12, n) * 7919
    return keys, t, amount, mcc


def _apply_in(store, stream, size):
    keys, t, amount, mcc = stream
    return np.concatenate([store.apply(keys[i:i + size], t[i:i + size], amount[i:i + size],
                                       mcc[i:i + size]) for i in range(0, len(keys), size)])


def test_feature_names_follow_the_contract():
    assert VELOCITY_FEATURES == (
        "card_tx_1m", "card_amount_1m", "card_tx_1h", "card_amount_1h", "card_tx_24h",
        "card_amount_24h", "card_secs_since_prev", "card_amount_z", "card_mcc_24h",
        "card_micro_10m", "card_tx_10m", "card_mcc_10m", "card_micro_1m", "card_secs_since_micro")


@pytest.mark.parametrize("seed, cap", [(1, MAX_CARD_EVENTS), (2, MAX_CARD_EVENTS), (3, 6)])
def test_any_batch_split_gives_identical_bits_and_matches_the_reference(seed, cap):
    print(f"seed {seed}")
    stream = _stream(seed, 8192)
    ref = RefStore(cap).apply(*stream)
    assert (ref[:, 4] > cap).any() == (cap < MAX_CARD_EVENTS)   # full cards: the bound was hit
    assert np.isnan(ref[:, 6]).any() and (ref[:, 4] > 3).any() and (ref[:, 9] > 1).any()
    # the burst features have something to compare: bursts of micro amounts, several merchant
    # categories in 10 minutes, micro amounts seconds apart and cards with none before
    assert (ref[:, 12] > 1).any() and (ref[:, 11] > 2).any() and (ref[:, 10] > 2).any()
    assert np.isnan(ref[:, 13]).any() and (ref[:, 13] < 60).any()
    for size in (1, 7, 300, 8192):
        got = _apply_in(CardStore(cards=16, events=16, max_events=cap), stream, size)
        np.testing.assert_array_equal(_bits(got), _bits(ref), err_msg=f"batch size {size}")


_event = st.tuples(st.integers(0, 5),                                  # card
                   st.sampled_from([0.0, 0.25, 1.0, 59.0, 60.0, 61.0, 599.0, 3600.0,
                                    86399.0, 86400.0, 86401.0, -10.0, -86401.0, 2e5]),
                   st.floats(0.0, 2000.0, width=32),                   # amount
                   st.integers(0, 3))                                  # merchant


@settings(deadline=None, max_examples=300)
@given(events=st.lists(_event, min_size=1, max_size=120), cut=st.integers(1, 40),
       cap=st.sampled_from([MAX_CARD_EVENTS, 1, 2, 5]))
def test_property_matches_reference_for_random_streams_and_splits(events, cut, cap):
    # cap: the service's bound on a card's events, or one small enough to be hit here
    keys = [b"k%d" % e[0] for e in events]
    t = T0 + np.cumsum([e[1] for e in events])
    amount = np.array([e[2] for e in events], dtype=np.float32)
    mcc = np.array([e[3] for e in events], dtype=np.int64)
    ref = RefStore(cap).apply(keys, t, amount, mcc)
    got = _apply_in(CardStore(cards=2, events=2, max_events=cap), (keys, t, amount, mcc), cut)
    np.testing.assert_array_equal(_bits(got), _bits(ref))


@pytest.mark.parametrize("pieces", [1, 7])   # 7: keys known from an earlier restore call
def test_restored_store_continues_bit_identically(pieces):
    stream = _stream(3, 6000)
    whole = _apply_in(CardStore(), stream, 500)
    first = CardStore()
    changelog = []
    keys, t, amount, mcc = stream
    out = []
    for i in range(0, 3000, 500):
        out.append(first.apply(keys[i:i + 500], t[i:i + 500], amount[i:i + 500], mcc[i:i + 500]))
        changelog.extend(first.changes())
    assert any(v is None for _, v in changelog), "the stream must evict some cards"
    second = CardStore(cards=4, events=4)
    step = -(-len(changelog) // pieces)
    for i in range(0, len(changelog), step):   # repeated keys and tombstones in every piece
        second.restore(changelog[i:i + step])
    assert len(second) <= len(first) and second.watermark == first.watermark
    rest = (keys[3000:], t[3000:], amount[3000:], mcc[3000:])
    out.append(_apply_in(second, rest, 777))
    np.testing.assert_array_equal(_bits(np.concatenate(out)), _bits(whole))


def test_idle_cards_are_evicted_and_tombstoned():
    store = CardStore()
    n = 5000
    store.apply([b"c%d" % i for i in range(n)], np.full(n, T0), np.ones(n, np.float32), np.zeros(n))
    assert len(store) == n
    store.changes()
    # one card walks the watermark on (100 min steps); once it is 24 h past the others,
    # they are idle and the sweeps (256 slots per batch at least) remove them all
    for step in range(1, 60):
        store.apply([b"live"], np.array([T0 + step * 6000.0]), np.ones(1, np.float32), np.zeros(1))
    tomb = [k for k, v in store.changes() if v is None]
    assert len(store) == 1 and len(tomb) == n


def test_bad_times_do_not_change_state():
    store, ref = CardStore(), RefStore()
    keys = [b"a", b"a", b"a", b"a", b"b", b"a"]
    t = np.array([T0, T0 + 10, T0 + 10 + 2 * H, T0 - 2 * H, T0 + 5 * H, T0 + 20])
    amount = np.array([5, 7, 1000, 1000, 3, 9], dtype=np.float32)
    got = store.apply(keys, t, amount, np.zeros(6))
    np.testing.assert_array_equal(_bits(got), _bits(ref.apply(keys, t, amount, np.zeros(6))))
    # the far-future and far-past ones were scored as if at the latest time, alone added
    assert got[2, 4] == 3 and got[2, 6] == 0.0 and got[3, 4] == 3
    # ... and left nothing behind: the last sees the first two only; the new card b, 5 days
    # ahead of the watermark, was scored alone and not kept
    assert got[5, 4] == 3 and got[5, 5] == np.float32(21.0) and got[5, 6] == 10.0
    assert got[4, 4] == 1 and np.isnan(got[4, 6]) and store.watermark == T0 + 20
    assert b"b" not in dict(store.changes())


def test_traffic_resuming_after_a_day_moves_the_partition_on():
    # 40 cards, then 3 days without traffic, then the same cards again: the first 99 after
    # the pause are bad clocks (scored alone, nothing kept), the 100th moves the watermark
    # on, and from then on the cards build history again, whatever the batch split
    from core._velocity_kernel import RESYNC_RUN

    rng = np.random.default_rng(11)
    n_before, n_after = 400, 600
    keys = [b"c%d" % k for k in rng.integers(0, 40, n_before + n_after)]
    t = np.concatenate([T0 + np.arange(n_before) * 30.0,
                        T0 + 3 * H + np.arange(n_after) * 30.0])
    amount = rng.lognormal(3, 1, n_before + n_after).astype(np.float32)
    mcc = rng.integers(0, 5, n_before + n_after)
    stream = (keys, t, amount, mcc)
    ref = RefStore().apply(*stream)
    for size in (1, 37, 1000):
        np.testing.assert_array_equal(_bits(_apply_in(CardStore(cards=2, events=2), stream, size)),
                                      _bits(ref))
    after = ref[n_before:]
    assert np.isnan(after[RESYNC_RUN - 1, 6])                 # the 100th starts its card afresh
    assert after[-1, 4] > 10                                  # and history builds up again
    store = CardStore()
    _apply_in(store, (keys[:n_before], t[:n_before], amount[:n_before], mcc[:n_before]), 100)
    store.changes()
    cut = n_before + RESYNC_RUN - 1                           # the 99 bad clocks keep nothing
    store.apply(keys[n_before:cut], t[n_before:cut], amount[n_before:cut], mcc[n_before:cut])
    assert store.changes() == [] and store.ahead == RESYNC_RUN - 1 and store.watermark == t[n_before - 1]
    _apply_in(store, (keys[cut:], t[cut:], amount[cut:], mcc[cut:]), 250)
    assert store.watermark == t[-1] and store.ahead == 0


def test_a_run_of_future_clocks_shorter_than_the_resync_run_changes_nothing():
    from core._velocity_kernel import RESYNC_RUN

    store = CardStore()
    store.apply([b"a"], np.array([T0]), np.ones(1, np.float32), np.zeros(1))
    n = RESYNC_RUN - 1
    store.apply([b"x%d" % i for i in range(n)], np.full(n, T0 + 2 * H), np.ones(n, np.float32), np.zeros(n))
    assert store.ahead == n and store.watermark == T0
    got = store.apply([b"a"], np.array([T0 + 60.0]), np.ones(1, np.float32), np.zeros(1))
    assert store.ahead == 0 and store.watermark == T0 + 60.0 and got[0, 4] == 2


def test_undecodable_state_record_names_its_index():
    store = CardStore()
    store.apply([b"x"], np.array([T0]), np.ones(1, np.float32), np.zeros(1))
    (key, good), = store.changes()
    for bad in (b"", b"\x02" + good[1:], good[:-1], good + b"\0" * 20):
        with pytest.raises(StateRecordError) as info:
            CardStore().restore([(key, good), (b"y", bad)])
        assert info.value.index == 1


def test_epoch_seconds_and_merchant_id():
    assert epoch_seconds("2026-01-01T00:00:00Z") == T0
    assert epoch_seconds("2024-02-29T12:34:56.250Z") == 1709210096.25
    assert epoch_seconds("1970-01-01T00:00:00.5Z") == 0.5
    assert merchant_id("grocery") == merchant_id(b"grocery") != merchant_id("fuel")


def test_every_velocity_feature_has_a_reason_code_and_text():
    from core.reasons import VELOCITY_REASONS, reason_text

    assert [name for _, name, _ in VELOCITY_REASONS] == list(VELOCITY_FEATURES)
    assert reason_text("CARD_TX_1M", 14.0) == "14 transactions on this card in the last minute"
    assert "card testing" in reason_text("CARD_MICRO_10M", 9.0)
    assert reason_text("CARD_SECS_SINCE_PREV", float("nan")) == "first transaction seen on this card"
    for code, _, _ in VELOCITY_REASONS:
        assert not reason_text(code, 3.0).startswith("behaviour pattern"), code


def test_stats_line_shows_cards_bytes_and_the_last_restore():
    from core.cardstate import CardStates
    from core.config import ScoringConfig

    states = CardStates(ScoringConfig(), "w")
    store = CardStore()
    store.apply([b"a", b"b"], np.array([T0, T0]), np.ones(2, np.float32), np.zeros(2))
    states._stores[3] = store
    states.restore_stats.last_seconds, states.restore_stats.last_records = 1.25, 40
    text = states.stats_text()
    states.restore_stats.last_replayed, states.restore_stats.last_replay_seconds = 7, 0.5
    assert text.startswith(" | state 2 cards ") and " MB, last restore 1.25 s (40 records, " in text
    assert "(40 records, 7 replayed in 0.50 s)" in states.stats_text()
    states.restore_stats.active, states.restore_stats.records, states.restore_stats.target = 1, 5, 9
    states.restore_stats.replayed, states.restore_stats.replay_target = 3, 8
    assert "restoring 5/9 records, replaying 3/8" in states.stats_text()


def test_an_oversize_key_is_scored_as_a_first_transaction_and_never_kept():
    # Its changelog record would carry the key: a 1 MB key made every batch's commit fail.
    store = CardStore()
    big = b"k" * (MAX_CARD_KEY_BYTES + 1)
    t = T0 + np.arange(4.0)
    amount, mcc = np.array([5.0, 6.0, 7.0, 8.0], dtype=np.float32), np.array([1, 2, 1, 2])
    out = apply_bounded(store, [big, big, big, big], t, amount, mcc)
    for i in range(4):   # each alone: a card's first transaction, never the previous big row's
        first = CardStore().apply([b"x"], t[i:i + 1], amount[i:i + 1], mcc[i:i + 1])[0]
        np.testing.assert_array_equal(_bits(out[i]), _bits(first))
    assert out[3, VELOCITY_FEATURES.index("card_tx_1m")] == 1
    assert np.isnan(out[3, VELOCITY_FEATURES.index("card_secs_since_prev")])
    # nothing stored: no card, no watermark, nothing for the changelog
    assert len(store) == 0 and np.isnan(store.watermark) and store.changes() == []


def test_apply_bounded_keeps_the_history_of_normal_keys_around_oversize_ones():
    store = CardStore()
    big = b"k" * (MAX_CARD_KEY_BYTES + 1)
    edge = b"e" * MAX_CARD_KEY_BYTES   # at the limit: a card like any other
    keys = [b"card-a", big, b"card-a", edge, big, edge]
    t = T0 + np.arange(6.0)
    amount = np.arange(1, 7, dtype=np.float32)
    mcc = np.array([1, 2, 1, 3, 2, 3])
    out = apply_bounded(store, keys, t, amount, mcc)
    normal = [0, 2, 3, 5]
    alone = CardStore().apply([keys[i] for i in normal], t[normal], amount[normal], mcc[normal])
    np.testing.assert_array_equal(_bits(out[normal]), _bits(alone))
    tx_1m = VELOCITY_FEATURES.index("card_tx_1m")
    assert out[[0, 2, 3, 5], tx_1m].tolist() == [1, 2, 1, 2] and out[[1, 4], tx_1m].tolist() == [1, 1]
    assert len(store) == 2 and store.watermark == T0 + 5
    assert sorted(key for key, _ in store.changes()) == [b"card-a", edge]
    # the history is kept for the next batch, and a batch without oversize keys is store.apply
    ref = CardStore()
    ref.apply([keys[i] for i in normal], t[normal], amount[normal], mcc[normal])
    more = ([b"card-a", edge], np.array([T0 + 10, T0 + 11]), np.ones(2, np.float32), np.array([1, 3]))
    np.testing.assert_array_equal(_bits(apply_bounded(store, *more)), _bits(ref.apply(*more)))
    assert apply_bounded(store, [], np.empty(0), np.empty(0, np.float32), np.empty(0, np.int64)).shape == (0, len(VELOCITY_FEATURES))


def test_card_ids_within_and_across_batches():
    # a new card takes the free slot at the end of the free list in first-seen order (as
    # before the lookup went through map()): slots decide the sweep's order, so they stay put
    store = CardStore(cards=8)
    free = store._index.free[:store._index.free_slots].tolist()
    first = store._ids([b"a", b"b", b"a", b"c"]).tolist()
    assert first == [free[-3], free[-2], free[-3], free[-1]]
    assert store._ids([b"c", b"d", b"a"]).tolist() == [first[3], free[-4], first[0]]
    assert store._ids([]).tolist() == []
    grown = store._ids([b"k%d" % i for i in range(20)] + [b"a"])   # past the capacity
    assert len(set(grown[:20].tolist())) == 20 and grown[20] == first[0]
    assert store._index.keys(grown) == [b"k%d" % i for i in range(20)] + [b"a"]


def test_a_failed_lookup_leaves_no_half_entered_card():
    store = CardStore()
    store._ids([b"known"])
    with pytest.raises(TypeError):
        store._ids([b"a", b"known", ["not", "hashable"], b"b"])
    assert store._index.as_dict() == {b"known": store._ids([b"known"])[0]}
    assert store._ids([b"a"])[0] >= 0 and len(store) == 2


def test_burst_features_read_a_card_testing_rhythm():
    """card_tx_10m, card_mcc_10m, card_micro_1m and card_secs_since_micro on a hand-made
    history: a purchase an hour ago, then micro amounts seconds apart at three merchants."""
    col = {name: i for i, name in enumerate(VELOCITY_FEATURES)}
    keys = [b"c"] * 5
    t = np.array([T0, T0 + 3600, T0 + 3605, T0 + 3610, T0 + 3700])
    amount = np.array([40.0, 0.5, 0.3, 12.0, 0.9], dtype=np.float32)
    mcc = np.array([1, 2, 3, 2, 4])
    got = CardStore().apply(keys, t, amount, mcc)
    assert got[:, col["card_tx_10m"]].tolist() == [1, 1, 2, 3, 4]
    assert got[:, col["card_mcc_10m"]].tolist() == [1, 1, 2, 2, 3]
    assert got[:, col["card_micro_1m"]].tolist() == [0, 1, 2, 2, 1]   # 3605 is 95 s before 3700
    since = got[:, col["card_secs_since_micro"]]
    assert np.isnan(since[:2]).all() and since[2:].tolist() == [5.0, 5.0, 95.0]
