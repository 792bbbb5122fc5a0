"""bench.load.synth: reproducible columns, fraud patterns where they were asked for, and payloads
that say exactly what the columns say."""

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.load import synth
from core.features import HOUR

SEED = 4242


@pytest.fixture(scope="module")
def batch():
    print(f"seed={SEED}")
    return synth.generate(50_000, seed=SEED, fraud_rate=0.02, card_skew=1.1, n_cards=2_000)


def test_same_seed_same_batch_other_seed_other_batch(batch):
    again = synth.generate(50_000, seed=SEED, fraud_rate=0.02, card_skew=1.1, n_cards=2_000)
    for name in ("transaction_id", "card_hash", "amount", "timestamp", "merchant_category",
                 "V", "label", "pattern"):
        np.testing.assert_array_equal(getattr(batch, name), getattr(again, name), err_msg=name)
    other = synth.generate(50_000, seed=SEED + 1, fraud_rate=0.02)
    assert not np.array_equal(other.amount, batch.amount)


def test_shapes_types_and_order(batch):
    n = len(batch)
    assert batch.V.shape == (n, 28) and batch.V.dtype == np.float32
    assert batch.amount.dtype == np.float64 and batch.timestamp.dtype == np.float64
    assert batch.label.dtype == np.int8 and batch.pattern.dtype == np.int8
    assert (np.diff(batch.timestamp) >= 0).all(), "rows are sorted by time"
    assert batch.timestamp.min() >= synth.DEFAULT_START
    assert batch.timestamp.max() < synth.DEFAULT_START + 86_400
    assert len(set(batch.transaction_id.tolist())) == n
    assert all(re.fullmatch(r"[0-9a-f]{16}", c) for c in batch.card_hash[:100].tolist())
    assert set(batch.merchant_category.tolist()) <= set(synth.MERCHANT_CATEGORIES)
    assert ((batch.amount >= 0.01) & (batch.amount <= 25_000)).all()
    np.testing.assert_array_equal(np.round(batch.amount, 2), batch.amount)


def test_labels_and_patterns_agree(batch):
    assert ((batch.label == 1) == (batch.pattern != synth.LEGIT)).all()
    rate = batch.label.mean()
    assert 0.015 < rate < 0.025, rate
    assert set(np.unique(batch.pattern[batch.label == 1]).tolist()) == {1, 2, 3, 4, 5, 6}


def test_pattern_amounts(batch):
    amount, pattern = batch.amount, batch.pattern
    high = amount[pattern == synth.HIGH_AMOUNT]
    assert ((high >= 500) & (high <= 5000)).all()
    for code in (synth.MICRO, synth.CARD_TESTING_BURST):
        micro = amount[pattern == code]
        assert ((micro >= 0.01) & (micro <= 1.0)).all()
    rnd = amount[pattern == synth.ROUND_AMOUNT]
    assert ((rnd >= 100) & (rnd <= 1000) & (rnd % 50 == 0)).all()


def test_legit_overlaps_fraud_shapes(batch):
    """Realistic overlap: legit customers also pay micro, round and high amounts."""
    legit = batch.amount[batch.label == 0]
    assert (legit <= 1.0).mean() > 0.005
    assert (legit >= 500).mean() > 0.01
    assert ((legit >= 100) & (legit % 50 == 0)).mean() > 0.01


def test_bursts_sit_on_few_cards_within_their_window():
    b = synth.generate(20_000, seed=SEED, fraud_rate=0.05, mix={"card_testing_burst": 1.0},
                       burst_size=25, burst_window_s=120.0)
    rows = b.pattern == synth.CARD_TESTING_BURST
    assert rows.sum() > 500
    assert (b.pattern[b.label == 1] == synth.CARD_TESTING_BURST).all()
    cards, counts = np.unique(b.card_hash[rows], return_counts=True)
    assert len(cards) <= rows.sum() / 25 + 1
    for card in cards[:20]:
        t = b.timestamp[rows & (b.card_hash == card)]
        assert t.max() - t.min() <= 120.0 + 1e-6


def test_card_testing_payments_look_like_legit_ones_the_other_fraud_does_not():
    """A tester's payments are ordinary small ones: their V components are drawn as legit
    ones are, so only the card's behaviour gives them away; other fraud moves V14 and V4."""
    b = synth.generate(40_000, seed=SEED, fraud_rate=0.1,
                       mix={"card_testing_burst": 1.0, "velocity": 1.0})
    v14, v4 = b.V[:, 13], b.V[:, 3]
    legit = b.pattern == synth.LEGIT
    testing = b.pattern == synth.CARD_TESTING_BURST
    velocity = b.pattern == synth.VELOCITY
    assert testing.sum() > 1_000 and velocity.sum() > 1_000
    # standard error of a mean over > 1,000 N(0, 1) values < 0.032
    for col in (v14, v4):
        assert abs(col[testing].mean() - col[legit].mean()) < 0.1
        assert abs(col[testing].std() - col[legit].std()) < 0.1
    assert v14[velocity].mean() < v14[legit].mean() - 0.8
    assert v4[velocity].mean() > v4[legit].mean() + 0.8


def test_velocity_clusters():
    b = synth.generate(20_000, seed=SEED, fraud_rate=0.05, mix={"velocity": 1.0},
                       velocity_size=8, velocity_window_s=600.0)
    rows = b.pattern == synth.VELOCITY
    cards, counts = np.unique(b.card_hash[rows], return_counts=True)
    assert np.median(counts) >= 8
    for card in cards[:20]:
        t = b.timestamp[rows & (b.card_hash == card)]
        assert t.max() - t.min() <= 600.0 + 1e-6


def test_card_skew_concentrates_traffic():
    flat = synth.generate(50_000, seed=SEED, n_cards=1_000, card_skew=0.0, fraud_rate=0.0)
    skewed = synth.generate(50_000, seed=SEED, n_cards=1_000, card_skew=1.2, fraud_rate=0.0)
    top = lambda b: np.unique(b.card_hash, return_counts=True)[1].max() / len(b)
    assert top(skewed) > 10 * top(flat)


def test_id_offset_gives_distinct_ids():
    a = synth.generate(1_000, seed=SEED, id_offset=0)
    b = synth.generate(1_000, seed=SEED, id_offset=1_000)
    assert not set(a.transaction_id.tolist()) & set(b.transaction_id.tolist())


@pytest.mark.parametrize("kwargs, match", [
    ({"mix": {"phishing": 1.0}}, "unknown fraud pattern"),
    ({"mix": {"micro": 0.0}}, "positive sum"),
    ({"fraud_rate": 1.5}, "fraud_rate"),
    ({"span_s": 0}, "years 1970-9999"),
    ({"n_cards": 0}, "n_cards"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        synth.generate(10, seed=1, **kwargs)


def test_payloads_are_the_wire_contract_and_equal_the_columns(batch):
    payloads = batch.payloads()
    assert len(payloads) == len(batch)
    assert payloads[17] == batch.to_json(17)
    assert list(batch.iter_json(chunk=1000))[:3000] == payloads[:3000]
    iso = batch.iso_timestamps()
    for i in range(0, len(batch), 97):
        d = json.loads(payloads[i])
        assert list(d)[:5] == ["transaction_id", "card_hash", "amount", "timestamp",
                               "merchant_category"]
        assert d["transaction_id"] == batch.transaction_id[i]
        assert d["card_hash"] == batch.card_hash[i]
        assert d["amount"] == batch.amount[i]
        assert d["timestamp"] == iso[i] and re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", d["timestamp"])
        assert int(d["timestamp"][11:13]) == batch.hour[i]
        assert d["merchant_category"] == batch.merchant_category[i]
        v = np.array([d[f"V{j}"] for j in range(1, 29)], dtype=np.float32)
        np.testing.assert_array_equal(v, batch.V[i])
        assert d["_synthetic_label"] == batch.label[i]
        if batch.label[i]:
            assert d["_synthetic_pattern"] == synth.PATTERN_NAMES[batch.pattern[i]]
        else:
            assert "_synthetic_pattern" not in d


def test_features_use_the_hour_of_the_timestamp(batch):
    x = batch.features()
    expected = [int(s[11:13]) for s in batch.iso_timestamps()[:500].tolist()]
    assert x[:500, HOUR].tolist() == expected


def test_extreme_values_encode_exactly():
    b = synth.generate(2_000, seed=SEED, fraud_rate=0.5, mix={"high_amount": 1.0},
                       start=0.0, span_s=250_000_000_000.0)
    object.__setattr__(b, "V", b.V * np.float32(12.0))     # |V| up to ~90: 2 integer digits
    for i, p in enumerate(b.payloads()):
        d = json.loads(p)
        np.testing.assert_array_equal(
            np.array([d[f"V{j}"] for j in range(1, 29)], dtype=np.float32),
            (np.rint(b.V[i].astype(np.float64) * 1e6) / 1e6).astype(np.float32))
        assert d["timestamp"] == b.iso_timestamps()[i]


mixes = st.dictionaries(st.sampled_from(synth.PATTERN_NAMES[1:]), st.floats(0.1, 5.0),
                        min_size=1)


@settings(deadline=None, max_examples=25)
@given(n=st.integers(0, 400), seed=st.integers(0, 2**32), fraud_rate=st.floats(0, 1),
       mix=mixes, n_cards=st.integers(1, 50), card_skew=st.floats(0, 2),
       span_s=st.floats(1.0, 1e6), burst_size=st.integers(1, 30))
def test_any_parameters_give_consistent_batches(n, seed, fraud_rate, mix, n_cards, card_skew,
                                                span_s, burst_size):
    b = synth.generate(n, seed=seed, fraud_rate=fraud_rate, mix=mix, n_cards=n_cards,
                       card_skew=card_skew, span_s=span_s, burst_size=burst_size)
    assert len(b) == n and b.V.shape == (n, 28)
    assert ((b.label == 1) == (b.pattern != synth.LEGIT)).all()
    allowed = {0} | {synth.PATTERN_NAMES.index(k) for k, w in mix.items() if w > 0}
    assert set(b.pattern.tolist()) <= allowed
    assert ((b.timestamp >= synth.DEFAULT_START)
            & (b.timestamp < synth.DEFAULT_START + span_s)).all()
    assert len(set(b.card_hash.tolist())) <= n_cards
    payloads = b.payloads()
    assert len(payloads) == n
    for i in range(0, n, 37):
        d = json.loads(payloads[i])
        assert d["amount"] == b.amount[i] and d["card_hash"] == b.card_hash[i]
        assert np.array_equal(np.array([d[f"V{j}"] for j in range(1, 29)], np.float32), b.V[i])
