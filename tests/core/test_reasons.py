"""core.contrib and core.reasons: contributions add up to the margin; reasons a person can read."""

import json

import numpy as np
import pytest

from bench.load.synth import PATTERN_NAMES, generate
from core import ModelError, Scorer
from core.contrib import Contributions
from core.features import AMOUNT, IS_HIGH, IS_MICRO, IS_ROUND, LOG_AMOUNT, N_FEATURES
from core.paths import default_model_path, stateless_model_path
from core.reasons import CODES, TOP, reason_text


@pytest.fixture(scope="module", autouse=True)
def _stateless(stateless_model):
    """These tests score without per-card state: the stateless model (tests/conftest.py)."""

SEED = 20261205
MODEL_JSON = stateless_model_path().with_name("fraud-model-stateless.json")   # what these score


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.load()


@pytest.fixture(scope="module")
def model_json() -> bytes:
    return (MODEL_JSON).read_bytes()


@pytest.fixture(scope="module")
def batch():
    print(f"bench.load.synth.generate(4000, seed={SEED}, fraud_rate=0.05)")
    return generate(4000, seed=SEED, fraud_rate=0.05)


def margins(x: np.ndarray) -> np.ndarray:
    import treelite

    model = treelite.frontend.load_xgboost_model(
        MODEL_JSON, format_choice="json")
    return treelite.gtil.predict(model, x, pred_margin=True).reshape(-1).astype(np.float64)


def test_contributions_plus_bias_are_the_margin_of_every_flagged_row(scorer, batch):
    result = scorer.score_batch(batch.payloads())
    flagged = np.array([i for i, _ in result.alerts])
    assert flagged.size >= 50
    x = batch.features()[flagged]
    c = scorer.model.contributions.compute(x)
    assert c.shape == (flagged.size, N_FEATURES + 1)
    np.testing.assert_allclose(c.sum(axis=1), margins(x), rtol=0, atol=1e-4)
    # and the compiled library's score is the sigmoid of that sum
    np.testing.assert_allclose(1 / (1 + np.exp(-c.sum(axis=1))), scorer.model.predict(x),
                               rtol=0, atol=1e-5)


def test_contributions_are_xgboosts_saabas_contributions(scorer, batch):
    import xgboost as xgb  # training extra: only to check our walk against XGBoost's own

    booster = xgb.Booster(model_file=str(MODEL_JSON))
    x = batch.features()[:500]
    theirs = booster.predict(xgb.DMatrix(x), pred_contribs=True, approx_contribs=True)
    np.testing.assert_allclose(scorer.model.contributions.compute(x), theirs, rtol=0, atol=1e-5)


def test_a_missing_value_follows_the_default_branch_and_still_adds_up(scorer, batch):
    x = batch.features()[:50].copy()
    x[:, 13] = np.nan  # V14: every tree that splits on it takes its default branch
    c = scorer.model.contributions.compute(x)
    np.testing.assert_allclose(c.sum(axis=1), margins(x), rtol=0, atol=1e-4)


def test_reasons_are_the_top_positive_contributions_largest_first(scorer, batch):
    result = scorer.score_batch(batch.payloads())
    flagged = np.array([i for i, _ in result.alerts])
    x = batch.features()[flagged]
    c = scorer.model.contributions.compute(x)
    for row, (i, value) in enumerate(result.alerts):
        reasons = json.loads(value)["reasons"]
        assert 1 <= len(reasons) <= TOP
        got = [r["contribution"] for r in reasons]
        assert got == sorted(got, reverse=True) and min(got) > 0
        by_code = {code: c[row, k - 1] for k, code in enumerate(CODES[:28], start=1)}
        amount_sum = c[row, [AMOUNT, LOG_AMOUNT, IS_MICRO, IS_ROUND, IS_HIGH]].sum()
        by_code.update(dict.fromkeys(("AMOUNT", "AMOUNT_MICRO", "AMOUNT_HIGH", "AMOUNT_ROUND"), amount_sum))
        for r in reasons:
            assert r["code"] in CODES
            if r["code"] in by_code:
                assert r["contribution"] == pytest.approx(by_code[r["code"]], abs=5e-5)
            assert r["text"] == reason_text(r["code"], r["value"])
        amount = json.loads(dict(result.scored)[i])["amount"]
        assert all(r["value"] == amount for r in reasons if r["code"].startswith("AMOUNT"))


# What the card did, or that the payment is a micro amount: what a card-testing alert must
# lead with (issue #18). A card tester's single payments look ordinary (the generator draws
# their V components as legit ones are), so BEHAVIOUR_V* is no explanation of one.
CARD_BEHAVIOUR = frozenset({"CARD_MICRO_10M", "CARD_TX_1M", "CARD_AMOUNT_1M", "CARD_TX_1H",
                            "CARD_AMOUNT_1H", "CARD_SECS_SINCE_PREV", "CARD_TX_10M",
                            "CARD_MCC_10M", "CARD_MICRO_1M", "CARD_SECS_SINCE_MICRO"})
TOP_REASON_BAR = 0.90       # measured 99 % with the committed model (models/README.md)
BEHAVIOUR_V_CEILING = 0.05  # measured 0.3 %


def test_card_testing_alerts_lead_with_the_cards_behaviour_or_the_micro_amount():
    """With the stateful model (the default), the TOP reason of at least TOP_REASON_BAR of
    card-testing alerts is a card velocity feature or the micro amount, and hardly ever an
    anonymised BEHAVIOUR_V*."""
    from collections import Counter

    from bench.model.velocity import velocity_features
    from core.model import load_model
    from core.reasons import Reasoner

    b = generate(20_000, seed=SEED, mix={"card_testing_burst": 1.0}, fraud_rate=0.05)
    print(f"bench.load.synth.generate(20000, seed={SEED}, card_testing_burst only, "
          f"fraud_rate=0.05)")
    model = load_model(default_model_path().with_name("fraud-model.meta.json"), compile=False)
    x = np.ascontiguousarray(np.hstack([b.features(), velocity_features(b)]))
    card_testing = PATTERN_NAMES.index("card_testing_burst")
    flagged = (model.predict(x) >= np.float32(model.meta.threshold)) & (b.pattern == card_testing)
    reasons = [rs for rs in Reasoner(model.contributions).explain(x[flagged]) if rs]
    assert len(reasons) >= 500
    tops = Counter(rs[0].code for rs in reasons)
    print(f"top reasons of {len(reasons)} card-testing alerts: {tops.most_common(8)}")
    lead = sum(rs[0].code in CARD_BEHAVIOUR or rs[0].code == "AMOUNT_MICRO" for rs in reasons)
    assert lead / len(reasons) >= TOP_REASON_BAR, f"{lead / len(reasons):.1%} lead with them"
    behaviour = sum(n for code, n in tops.items() if code.startswith("BEHAVIOUR_V"))
    assert behaviour / len(reasons) <= BEHAVIOUR_V_CEILING, f"{behaviour} lead with BEHAVIOUR_V*"


@pytest.mark.parametrize("code, value, text", [
    ("AMOUNT", 1234.5, "amount of 1,234.50"),
    ("AMOUNT_MICRO", 0.49, "micro amount of 0.49 (1.00 or less), as in card testing"),
    ("AMOUNT_ROUND", 300.0, "round amount of 300.00 (a whole 100 or more)"),
    ("AMOUNT_HIGH", 1234.5, "high amount of 1,234.50 (500.00 or more)"),
    ("HOUR_OF_DAY", 3.0, "made between 03:00 and 03:59 UTC"),
    ("BEHAVIOUR_V14", -2.3059, "behaviour pattern V14 = -2.306 (anonymised feature)"),
])
def test_reason_texts_read_as_sentences(code, value, text):
    assert code in CODES
    assert reason_text(code, value) == text


def test_codes_are_stable():
    assert CODES == tuple(f"BEHAVIOUR_V{k}" for k in range(1, 29)) + (
        "AMOUNT", "HOUR_OF_DAY",
        "CARD_TX_1M", "CARD_AMOUNT_1M", "CARD_TX_1H", "CARD_AMOUNT_1H", "CARD_TX_24H",
        "CARD_AMOUNT_24H", "CARD_SECS_SINCE_PREV", "CARD_AMOUNT_Z", "CARD_MCC_24H",
        "CARD_MICRO_10M", "CARD_TX_10M", "CARD_MCC_10M", "CARD_MICRO_1M", "CARD_SECS_SINCE_MICRO",
        "AMOUNT_MICRO", "AMOUNT_HIGH", "AMOUNT_ROUND")


@pytest.mark.parametrize("amount, code", [
    (0.49, "AMOUNT_MICRO"), (1.0, "AMOUNT_MICRO"), (1.01, "AMOUNT"), (300.0, "AMOUNT_ROUND"),
    (512.37, "AMOUNT_HIGH"), (1000.0, "AMOUNT_HIGH"), (42.5, "AMOUNT"),
])
def test_the_amount_is_one_reason_named_by_its_kind(amount, code):
    """amount, log_amount, is_micro, is_round and is_high are one reason, whose contribution
    is theirs summed, whose value is the amount and whose code says what kind of amount."""
    from core.reasons import Reasoner

    x = np.zeros((1, N_FEATURES), dtype=np.float32)
    x[0, AMOUNT], x[0, LOG_AMOUNT] = amount, np.log1p(amount)
    x[0, IS_MICRO], x[0, IS_HIGH] = amount <= 1.0, amount >= 500.0
    x[0, IS_ROUND] = amount >= 100.0 and amount == int(amount)
    family = (AMOUNT, LOG_AMOUNT, IS_MICRO, IS_ROUND, IS_HIGH)

    class OnlyTheAmount:   # a stand-in model: 0.1 from each of the five columns, nothing else
        n_features = N_FEATURES

        @staticmethod
        def compute(rows):
            out = np.zeros((rows.shape[0], N_FEATURES + 1))
            out[:, list(family)] = 0.1
            return out

    (reason,) = Reasoner(OnlyTheAmount).explain(x)[0]
    assert (reason.code, reason.value) == (code, round(amount, 2))
    assert reason.contribution == pytest.approx(0.5)
    assert f"{amount:,.2f}" in reason.text


@pytest.mark.parametrize("code, value, text", [
    ("CARD_TX_1M", 14.0, "14 transactions on this card in the last minute"),
    ("CARD_MICRO_10M", 9.0, "9 micro amounts (1.00 or less) on this card in 10 minutes, as in "
                            "card testing"),
    ("CARD_AMOUNT_Z", 4.25, "amount +4.2 standard deviations from this card's usual"),
    ("CARD_SECS_SINCE_PREV", float("nan"), "first transaction seen on this card"),
])
def test_velocity_reason_texts(code, value, text):
    assert reason_text(code, value) == text


@pytest.mark.parametrize("change, message", [
    (lambda m: m["learner"]["objective"].update(name="reg:squarederror"),
     "do not know the margin of objective 'reg:squarederror'"),
    (lambda m: m["learner"]["learner_model_param"].update(base_score="[0.1,0.2]"),
     "need one base score"),
    (lambda m: m["learner"]["gradient_booster"].update(name="gblinear"), "need a gbtree model"),
    (lambda m: m["learner"]["gradient_booster"]["model"]["trees"][0]["split_indices"]
     .__setitem__(0, 99), "do not fit 34 features"),
])
def test_a_model_reasons_cannot_explain_is_a_model_error(model_json, change, message):
    model = json.loads(model_json)
    change(model)
    with pytest.raises(ModelError, match=message):
        Contributions.from_xgboost_json(json.dumps(model).encode())
    with pytest.raises(ModelError, match="cannot read the trees"):
        Contributions.from_xgboost_json(b'{"learner": 1}')


def test_top_reasons_are_positive_largest_first_ties_by_code_order():
    from core.reasons import Reasoner

    class Fixed:  # contributions chosen by hand, so every rule of the choice is visible
        n_features = N_FEATURES

        def __init__(self, rows):
            self.rows = np.array(rows, dtype=np.float64)

        def compute(self, x):
            return self.rows

    c = np.zeros((3, N_FEATURES + 1))
    c[:, N_FEATURES] = 5.0                              # the bias is never a reason
    c[0, [13, 9, 3]] = [0.5, 0.7, 0.5]                  # V14 and V4 tie: V4 comes first
    c[0, AMOUNT], c[0, LOG_AMOUNT] = 0.2, 0.25          # summed: AMOUNT 0.45
    c[1, 0], c[1, 1] = 0.00004, -1.0                    # rounds to 0.0000: not a reason
    c[2, 30] = 1.0                                      # hour only
    x = np.zeros((3, N_FEATURES), dtype=np.float32)
    x[:, AMOUNT], x[:, 30] = 12.345, 23
    got = Reasoner(Fixed(c)).explain(x)
    assert [(r.code, r.contribution) for r in got[0]] == [
        ("BEHAVIOUR_V10", 0.7), ("BEHAVIOUR_V4", 0.5), ("BEHAVIOUR_V14", 0.5)]
    assert got[1] == ()
    assert [(r.code, r.value, r.text) for r in got[2]] == [
        ("HOUR_OF_DAY", 23.0, "made between 23:00 and 23:59 UTC")]
    c[0, [13, 9, 3]] = 0.0
    assert [(r.code, r.value, r.contribution) for r in Reasoner(Fixed(c)).explain(x)[0]] == [
        ("AMOUNT", 12.35, 0.45)]
