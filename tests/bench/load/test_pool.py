"""bench.load.pool: a replayed pool keeps every card's event times in send order, lap after lap,
starts every lap with each card idle past the longest window, and names the pattern of each
fraud it sent."""

import json
from types import SimpleNamespace

import numpy as np

from bench.load import synth
from bench.load.pool import LONGEST_WINDOW_S, Pool, build_pool

SEED = 77


def _traffic(**kw):
    base = dict(pool=3_000, seed=SEED, fraud_rate=0.05, mix=None, n_cards=300, card_skew=0.0,
                message_bytes=None)
    return SimpleNamespace(**{**base, **kw})


def _times(values):
    from datetime import datetime

    return [datetime.fromisoformat(json.loads(v)["timestamp"].replace("Z", "+00:00")).timestamp()
            for v in values]


def test_laps_continue_each_cards_history_in_time_order():
    pool = build_pool(_traffic(), 0)
    n = len(pool)
    values, keys = pool.take(n - 700, 2 * n + 1_400)       # across two wrap-arounds, unaligned
    assert len(values) == len(keys) == 2 * n + 1_400
    times = _times(values)
    last: dict[bytes, float] = {}
    for key, t in zip(keys, times):
        assert t >= last.get(key, -np.inf), "a card's time went back"
        last[key] = t
    assert (np.diff(times) >= 0).all()
    lap0 = pool.take(5, 1)[0][0]
    lap2 = pool.take(5 + 2 * n, 1)[0][0]
    assert json.loads(lap2)["transaction_id"] == json.loads(lap0)["transaction_id"]
    assert _times([lap2])[0] - _times([lap0])[0] == 2 * (86_400 + LONGEST_WINDOW_S)


def test_every_card_is_idle_past_the_longest_window_between_laps():
    # so the per-card state scores lap k as it scored lap 0, never a card that repeats
    # yesterday exactly
    from core._velocity_kernel import H

    assert LONGEST_WINDOW_S == H
    pool = build_pool(_traffic(), 0)
    n = len(pool)
    values, keys = pool.take(0, 2 * n)
    times = _times(values)
    last0 = {k: t for k, t in zip(keys[:n], times[:n])}
    first1: dict[bytes, float] = {}
    for k, t in zip(keys[n:], times[n:]):
        first1.setdefault(k, t)
    gaps = [first1[k] - last0[k] for k in first1]
    assert len(gaps) > 100 and min(gaps) > H


def test_padding_applies_to_every_lap():
    pool = build_pool(_traffic(message_bytes=1_000), 0)
    values, _ = pool.take(len(pool) - 2, 4)
    assert all(len(v) == 1_000 for v in values)
    assert all(json.loads(v)["_pad"] for v in values)


def test_positives_carry_their_patterns_across_laps():
    pool = build_pool(_traffic(), 0)
    n = len(pool)
    seqs, patterns = pool.positives(5 << 40, n + 100)
    rows = (seqs & ((1 << 40) - 1)) % n
    assert (pool.labels[rows] == 1).all()
    np.testing.assert_array_equal(patterns, pool.patterns[rows])
    assert len(seqs) == pool.labels.sum() + pool.labels[:100].sum()
    assert set(patterns.tolist()) <= set(range(1, len(synth.PATTERN_NAMES)))


def test_producers_have_cards_of_their_own():
    a, b = build_pool(_traffic(), 0), build_pool(_traffic(), 1)
    assert not set(a.keys) & set(b.keys)
    assert isinstance(a, Pool)
