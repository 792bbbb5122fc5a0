"""bench.load.synth at card level: legit cards have everyday histories with occasional bursts,
and each card-level fraud pattern leaves its signature on its card."""

import numpy as np
import pytest

from bench.load import synth
from bench.load._synth_cards import IN_APP_PRICES, TRANSIT_FARES

SEED = 1919


def _by_card(b, rows):
    """card -> sorted timestamps of the given rows."""
    out: dict[str, list[float]] = {}
    for c, t in zip(b.card_hash[rows].tolist(), b.timestamp[rows].tolist()):
        out.setdefault(c, []).append(t)
    return out


@pytest.fixture(scope="module")
def legit():
    print(f"seed={SEED}")
    return synth.generate(100_000, seed=SEED, fraud_rate=0.0, n_cards=25_000)


def test_legit_cards_make_a_few_payments_a_day(legit):
    counts = np.unique(legit.card_hash, return_counts=True)[1]
    assert 2.5 < np.median(counts) < 6.5, np.median(counts)
    assert np.percentile(counts, 99) < 20


def test_legit_cards_burst_too(legit):
    """Shopping trips, transit taps and in-app purchases: several payments on one card within
    an hour, micro amounts included, so neither a count nor a micro amount is a label."""
    per_card = _by_card(legit, np.ones(len(legit), bool))
    burst_cards = sum(any(t[i + 2] - t[i] <= 3600 for i in range(len(t) - 2))
                      for t in per_card.values())
    assert burst_cards > 0.02 * len(per_card)
    transit = legit.merchant_category == "transit"
    assert np.isin(legit.amount[transit], TRANSIT_FARES).mean() > 0.6
    assert (legit.amount <= 1.0).mean() > 0.01
    in_app = np.isin(legit.amount, IN_APP_PRICES) & (legit.merchant_category == "entertainment")
    assert in_app.sum() > 100


def test_each_card_keeps_its_own_amount_profile(legit):
    """Everyday amounts follow the card's typical amount: the spread of a card's log amounts
    is well below the spread across all cards."""
    everyday = (legit.amount > 1.0) & (legit.amount < 500) & (legit.merchant_category != "transit")
    logs = np.log(legit.amount[everyday])
    cards = legit.card_hash[everyday]
    _, inv, counts = np.unique(cards, return_inverse=True, return_counts=True)
    means = np.bincount(inv, logs) / counts
    within = np.sqrt(np.bincount(inv, (logs - means[inv]) ** 2).sum() / len(logs))
    assert within < 0.85 * logs.std()


def test_card_testing_is_micro_bursts_on_one_card():
    b = synth.generate(30_000, seed=SEED, fraud_rate=0.03, mix={"card_testing_burst": 1.0},
                       burst_size=20, burst_window_s=90.0)
    rows = b.pattern == synth.CARD_TESTING_BURST
    assert (b.amount[rows] <= 1.0).all()
    for times in list(_by_card(b, rows).values())[:30]:
        assert max(times) - min(times) <= 90.0 + 1e-6


def test_velocity_attack_crosses_merchant_categories_in_minutes():
    b = synth.generate(30_000, seed=SEED, fraud_rate=0.03, mix={"velocity": 1.0},
                       velocity_size=8, velocity_window_s=300.0)
    rows = b.pattern == synth.VELOCITY
    checked = 0
    for card in np.unique(b.card_hash[rows])[:30].tolist():
        mine = rows & (b.card_hash == card)
        if mine.sum() != 8:
            continue          # a run that happened to share its card with another
        checked += 1
        assert np.ptp(b.timestamp[mine]) <= 300.0 + 1e-6
        assert len(set(b.merchant_category[mine].tolist())) >= 6
        assert "transit" not in b.merchant_category[mine].tolist()
    assert checked >= 20


def test_account_takeover_breaks_the_cards_own_profile():
    b = synth.generate(200_000, seed=SEED, fraud_rate=0.01, n_cards=20_000,
                       mix={"account_takeover": 1.0})
    rows = np.flatnonzero(b.pattern == synth.ACCOUNT_TAKEOVER)
    ratios = []
    for i in rows[::3][:200].tolist():
        card = b.card_hash[i]
        before = (b.card_hash == card) & (b.label == 0) & (b.timestamp < b.timestamp[i])
        if before.sum() >= 3:
            ratios.append(b.amount[i] / np.median(b.amount[before]))
    assert len(ratios) > 100, "takeovers land on cards with a history"
    assert np.median(ratios) > 5


def test_pattern_names_on_the_wire_match_the_labels():
    b = synth.generate(5_000, seed=SEED, fraud_rate=0.2)
    import json

    for payload, label, pattern in zip(b.payloads(), b.label.tolist(), b.pattern.tolist()):
        d = json.loads(payload)
        assert d["_synthetic_label"] == label
        assert d.get("_synthetic_pattern", "legit") == synth.PATTERN_NAMES[pattern]


def test_card_offset_gives_disjoint_cards():
    a = synth.generate(5_000, seed=SEED, n_cards=1_000)
    b = synth.generate(5_000, seed=SEED, n_cards=1_000, card_offset=1_000)
    assert not set(a.card_hash.tolist()) & set(b.card_hash.tolist())
