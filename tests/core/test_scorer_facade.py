"""core.Scorer's per-message facade with the default, stateful model: one Scorer keeps the card
history of one stream, and its vectors and scores equal score_batch's for the same stream, bit
for bit, whatever the batch split of the service."""

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from bench.load.synth import generate
from core import Scorer
from core.cardfields import card_json_names
from core.cardbatch import batch_velocity
from core.decode import decode_batch
from core.features import N_FEATURES
from core.paths import stateless_model_path
from core.velocity import MAX_CARD_KEY_BYTES, VELOCITY_FEATURES, CardStore

SEED = 20261206
_STATEFUL = stateless_model_path().parent / "fraud-model.meta.json"
_BIG_KEY = "k" * (MAX_CARD_KEY_BYTES + 1)


@pytest.fixture(scope="module")
def stream():
    # few cards over an hour, so windows fill up and card-level fraud patterns show
    print(f"bench.load.synth.generate(1500, seed={SEED}, fraud_rate=0.05, n_cards=40, span_s=3600)")
    values = generate(1500, seed=SEED, fraud_rate=0.05, n_cards=40, span_s=3600.0).payloads()
    keys = [json.loads(v)["card_hash"].encode() for v in values]
    for i in (17, 900):     # an oversize key: the service scores it as a card with no history
        keys[i] = _BIG_KEY.encode()
    return values, keys


def _load() -> Scorer:
    scorer = Scorer.load(_STATEFUL)
    assert scorer.needs_velocity
    return scorer


def _facade_vector(scorer: Scorer, value: bytes, key: bytes, as_datetime: bool) -> np.ndarray:
    tx = json.loads(value)
    when = tx["timestamp"]
    if as_datetime:
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    return scorer.compute_features(tx["amount"], when, {f"V{k}": tx[f"V{k}"] for k in range(1, 29)},
                                   card_hash=key.decode(), merchant_category=tx["merchant_category"])


def _bits(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def test_facade_equals_score_batch_bit_for_bit_with_state(stream):
    values, keys = stream
    service, facade = _load(), _load()
    store, scored, scores = CardStore(), [], []
    cuts = [0, 1, 8, 300, 301, 1024, len(values)]   # the service's batches: sizes 1..723
    for a, b in zip(cuts, cuts[1:]):
        r = service.score_batch(values[a:b], batch_velocity({0: store}, np.zeros(b - a, np.int64), keys[a:b]))
        assert r.dead == [] and len(r.scored) == b - a
        scored += [json.loads(v) for _, v in r.scored]
        scores += r.scores.tolist()
    base = service.features(decode_batch(values))
    vectors = np.array([_facade_vector(facade, v, key, i % 2 == 1)
                        for i, (v, key) in enumerate(zip(values, keys))])
    assert vectors.shape == (len(values), N_FEATURES + len(VELOCITY_FEATURES))
    card = np.array([[np.nan if c is None else c for c in (event["card"][n] for n in card_json_names())]
                     for event in scored], dtype=np.float32)
    np.testing.assert_array_equal(_bits(vectors[:, :N_FEATURES]), _bits(base))
    np.testing.assert_array_equal(_bits(vectors[:, N_FEATURES:]), _bits(card))
    np.testing.assert_array_equal(_bits(facade.model.predict(vectors)), _bits(scores))
    for vector, event in zip(vectors, scored):
        assert facade.predict(vector) == {
            "fraud_score": event["fraud_score"], "is_fraud": event["is_fraud"],
            "risk_level": event["risk_level"], "threshold_used": event["threshold"]}
    # the stream really exercised the history: busy cards, alerts, and the oversize keys alone
    tx_1h = card[:, VELOCITY_FEATURES.index("card_tx_1h")]
    assert np.nanmax(tx_1h) >= 10 and sum(e["is_fraud"] for e in scored) >= 10
    assert card[17, VELOCITY_FEATURES.index("card_tx_24h")] == 1.0
    assert np.isnan(card[900, VELOCITY_FEATURES.index("card_secs_since_prev")])


def test_each_call_is_one_transaction_of_the_stream():
    """Documented: calling twice for one transaction counts it twice; other Scorers are apart."""
    scorer, other = _load(), _load()
    v = {f"V{k}": 0.0 for k in range(1, 29)}
    tx_1m = N_FEATURES + VELOCITY_FEATURES.index("card_tx_1m")
    args = (0.5, "2026-01-01T00:00:00Z", v)
    assert scorer.compute_features(*args, card_hash="c", merchant_category="m")[tx_1m] == 1
    assert scorer.compute_features(*args, card_hash=b"c", merchant_category="m")[tx_1m] == 2
    assert scorer.compute_features(*args, card_hash="d", merchant_category="m")[tx_1m] == 1
    assert other.compute_features(*args, card_hash="c", merchant_category="m")[tx_1m] == 1


def test_stateful_facade_refuses_without_the_card_and_keeps_state_on_bad_input():
    scorer = _load()
    v = {f"V{k}": 0.0 for k in range(1, 29)}
    with pytest.raises(ValueError, match="card_hash= and merchant_category=.*stateless_model_path"):
        scorer.compute_features(10.0, "2026-01-01T00:00:00Z", v)
    with pytest.raises(ValueError, match="card_hash= and merchant_category="):
        scorer.compute_features(10.0, "2026-01-01T00:00:00Z", v, card_hash="c")
    with pytest.raises(ValueError, match="bad timestamp"):
        scorer.compute_features(10.0, "2026-01-01 00:00:00", v, card_hash="c", merchant_category="m")
    with pytest.raises(ValueError, match="V28"):
        scorer.compute_features(10.0, "2026-01-01T00:00:00Z", {"V1": 0.0}, card_hash="c",
                                merchant_category="m")
    # none of the refused calls was applied: the card's first transaction is still the next one
    x = scorer.compute_features(10.0, "2026-01-01T00:00:00Z", v, card_hash="c", merchant_category="m")
    assert x[N_FEATURES + VELOCITY_FEATURES.index("card_tx_24h")] == 1
    with pytest.raises(ValueError, match=rf"expected float32 \(n, {N_FEATURES + len(VELOCITY_FEATURES)}\)"):
        scorer.predict(x[:N_FEATURES])


@pytest.mark.parametrize("field, bad", [("amount", -5.0), ("amount", 1e40), ("amount", float("inf")),
                                        ("amount", "12"), ("amount", True), ("V3", None), ("V3", float("nan")),
                                        ("V3", 1e39), ("V3", "0.5")])
def test_the_facade_refuses_what_score_batch_dead_letters_with_its_reason(field, bad):
    scorer = _load()
    tx = {"amount": 10.0, **{f"V{k}": 0.0 for k in range(1, 29)}, "timestamp": "2026-01-01T00:00:00Z",
          "transaction_id": "t", "card_hash": "c", "merchant_category": "m"}
    with pytest.raises(ValueError) as refused:
        scorer.compute_features(bad if field == "amount" else 10.0, tx["timestamp"],
                                {**{f"V{k}": 0.0 for k in range(1, 29)}, **({field: bad} if field != "amount" else {})},
                                card_hash="c", merchant_category="m")
    # what the service makes of the same value on the wire (JSON has no NaN or infinity: those
    # two can only reach the facade, and are refused in its words)
    if not (isinstance(bad, float) and (bad != bad or bad == float("inf"))):
        result = _load().score_batch([json.dumps({**tx, field: bad}).encode()])
        assert result.scored == [] and len(result.dead) == 1
        assert result.dead[0][1] == str(refused.value)
    # nothing was applied: the card's first transaction is still the next one
    x = scorer.compute_features(10.0, tx["timestamp"], {f"V{k}": 0.0 for k in range(1, 29)}, card_hash="c",
                                merchant_category="m")
    assert x[N_FEATURES + VELOCITY_FEATURES.index("card_tx_24h")] == 1


def test_the_facade_takes_any_real_number_and_judges_amount_first():
    from decimal import Decimal

    scorer = Scorer.load(stateless_model_path())
    v = {f"V{k}": 0.25 for k in range(1, 29)}
    plain = scorer.compute_features(12.5, "2026-01-01T00:00:00Z", v)
    for amount in (Decimal("12.50"), np.float64(12.5), np.array(12.5)):   # a NUMERIC column, numpy
        np.testing.assert_array_equal(_bits(scorer.compute_features(amount, "2026-01-01T00:00:00Z", v)), _bits(plain))
    with pytest.raises(ValueError, match="non-finite number: `amount`"):
        scorer.compute_features(10 ** 400, "2026-01-01T00:00:00Z", v)
    # both wrong: the reason score_batch gives, which judges amount before the V fields
    with pytest.raises(ValueError, match=r"out of range: `amount` -5.0"):
        scorer.compute_features(-5, "2026-01-01T00:00:00Z", {**v, "V3": 1e39})


def test_stateless_model_ignores_the_card():
    scorer = Scorer.load(stateless_model_path())
    v = {f"V{k}": 0.1 for k in range(1, 29)}
    plain = scorer.compute_features(3.0, "2026-01-01T10:00:00Z", v)
    with_card = scorer.compute_features(3.0, "2026-01-01T10:00:00Z", v, card_hash="c", merchant_category="m")
    assert plain.shape == (N_FEATURES,)
    np.testing.assert_array_equal(_bits(plain), _bits(with_card))


def test_the_facade_scores_without_the_kafka_client():
    """A per-message user needs no confluent_kafka: the oversize-key rule the facade shares with
    the service lives in core.velocity, not in the Kafka-bound core.cardstate."""
    root = Path(__file__).resolve().parents[2]
    code = ("import sys\n"
            "from core.model import load_model\n"
            "from core.scorer import Scorer\n"
            "s = Scorer(load_model(None, compile=False))\n"
            "v = {f'V{i}': 0.0 for i in range(1, 29)}\n"
            f"for key in ('c', {_BIG_KEY!r}, 'c'):\n"
            "    x = s.compute_features(1.0, '2026-01-01T00:00:00Z', v, card_hash=key, merchant_category='m')\n"
            f"print(int(x[{N_FEATURES + VELOCITY_FEATURES.index('card_tx_1m')}]), "
            "sorted(m for m in sys.modules if m.partition('.')[0] == 'confluent_kafka' "
            "or m in ('core.cardstate', 'core.loop')))\n")
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "2 []", done.stdout
