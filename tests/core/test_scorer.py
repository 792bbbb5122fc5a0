"""core.Scorer with the committed model: batches equal one-by-one, outputs follow the contract."""

import json
from datetime import datetime, timezone

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.load.synth import generate
from core import BatchResult, Scorer
from core.schema import DEAD_KINDS, SCORE_FIELD_NAMES, Alert, ScoredEvent
from tests.core.strategies import mutations, raw_transactions
from tests.core.test_decode import raw


@pytest.fixture(scope="module", autouse=True)
def _stateless(stateless_model):
    """These tests score without per-card state: the stateless model (tests/conftest.py)."""

SEED = 20261128
SETTINGS = settings(deadline=None, max_examples=60,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])
# score_batch stamps each batch; everything else must match exactly between two runs
_STAMPS = ("scored_at", "scoring_latency_ms", "alert_time")


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.load()


@pytest.fixture(scope="module")
def synthetic() -> list[bytes]:
    print(f"synthetic transactions: bench.load.synth.generate(3000, seed={SEED}, fraud_rate=0.05)")
    return generate(3000, seed=SEED, fraud_rate=0.05).payloads()


def unstamped(value: bytes) -> dict:
    obj = json.loads(value)
    for key in _STAMPS:
        obj.pop(key, None)
    return obj


def same_result(a: BatchResult, b: BatchResult) -> None:
    assert [(i, unstamped(v)) for i, v in a.scored] == [(i, unstamped(v)) for i, v in b.scored]
    assert [(i, unstamped(v)) for i, v in a.alerts] == [(i, unstamped(v)) for i, v in b.alerts]
    assert a.dead == b.dead


def one_by_one(scorer: Scorer, values) -> BatchResult:
    scored, alerts, dead, scores = [], [], [], []
    for i, value in enumerate(values):
        r = scorer.score_batch([value])
        scored += [(i, v) for _, v in r.scored]
        alerts += [(i, v) for _, v in r.alerts]
        dead += [(i, reason) for _, reason in r.dead]
        scores += r.scores.tolist()
    return BatchResult(scored, alerts, dead, np.array(scores, dtype=np.float32))


def test_model_identity(scorer):
    assert scorer.model_version == scorer.model.meta.model_version
    assert 0.0 < scorer.threshold < 1.0


def test_batch_equals_one_by_one_on_synthetic_fraud(scorer, synthetic):
    values = synthetic[:400]
    batch = scorer.score_batch(values)
    assert len(batch.scored) == 400 and batch.dead == []
    assert batch.alerts, "fraud_rate=0.05 should produce alerts"
    same_result(batch, one_by_one(scorer, values))


@SETTINGS
@given(st.data())
def test_batch_equals_one_by_one_with_bad_values_mixed_in(scorer, synthetic, data):
    values = []
    for _ in range(data.draw(st.integers(1, 12))):
        kind = data.draw(st.sampled_from(["synthetic", "generated", "mutated", "bytes"]))
        if kind == "synthetic":
            values.append(synthetic[data.draw(st.integers(0, len(synthetic) - 1))])
        elif kind == "generated":
            values.append(data.draw(raw_transactions())[1])
        elif kind == "mutated":
            values.append(data.draw(mutations(synthetic[data.draw(st.integers(0, 99))])))
        else:
            values.append(data.draw(st.binary(max_size=40)))
    batch = scorer.score_batch(values)
    same_result(batch, one_by_one(scorer, values))
    assert sorted([i for i, _ in batch.scored] + [i for i, _ in batch.dead]) == \
        list(range(len(values)))
    assert all(reason.split(":")[0] in DEAD_KINDS for _, reason in batch.dead)


def test_scored_events_are_the_input_plus_score_fields(scorer, synthetic):
    values = synthetic[:500] + [raw(extra={"a": [1, 2]}, schema_v=2)]
    result = scorer.score_batch(values)
    by_index = dict(result.scored)
    assert list(by_index) == list(range(len(values)))
    flagged = set()
    for (i, out), score in zip(result.scored, result.scores):
        event = msgspec.json.decode(out, type=ScoredEvent)
        scored = json.loads(out)
        assert {k: scored[k] for k in json.loads(values[i])} == json.loads(values[i])
        added = set(SCORE_FIELD_NAMES) | ({"reasons"} if scored["is_fraud"] else set())
        assert set(scored) - set(json.loads(values[i])) == added
        assert event.model_version == scorer.model_version
        assert event.threshold == scorer.threshold
        assert abs(event.fraud_score - float(score)) <= 5e-7
        assert event.is_fraud == (np.float32(score) >= np.float32(scorer.threshold))
        assert event.risk_level in ("HIGH", "CRITICAL") if event.is_fraud else \
            event.risk_level in ("LOW", "MEDIUM")
        if event.is_fraud:
            flagged.add(i)
    assert {i for i, _ in result.alerts} == flagged


def test_alerts_follow_the_wire_contract(scorer, synthetic):
    result = scorer.score_batch(synthetic)
    scored = dict(result.scored)
    assert result.alerts
    for i, value in result.alerts:
        alert = msgspec.json.decode(value, type=Alert)
        event = json.loads(scored[i])
        assert alert.alert_id == "alert_" + event["transaction_id"]
        assert (alert.transaction_id, alert.card_hash, alert.amount, alert.merchant_category,
                alert.timestamp) == (event["transaction_id"], event["card_hash"],
                                     event["amount"], event["merchant_category"],
                                     event["timestamp"])
        assert (alert.fraud_score, alert.risk_level) == (event["fraud_score"],
                                                         event["risk_level"])
        assert alert.action_required == ("BLOCK" if alert.risk_level == "CRITICAL" else "REVIEW")
        assert alert.alert_time == event["scored_at"]
        assert alert.model_version == event["model_version"] == scorer.model_version
        assert 1 <= len(alert.reasons) <= 3
        assert [msgspec.structs.asdict(r) for r in alert.reasons] == event["reasons"]


def test_facade_matches_score_batch(scorer, synthetic):
    values = synthetic[:300]
    result = scorer.score_batch(values)
    for i, out in result.scored:
        tx = json.loads(values[i])
        v = {f"V{k}": tx[f"V{k}"] for k in range(1, 29)}
        when = datetime.fromisoformat(tx["timestamp"].replace("Z", "+00:00"))
        for timestamp in (when, tx["timestamp"]):
            vector = scorer.compute_features(tx["amount"], timestamp, v)
            got = scorer.predict(vector)
            scored = json.loads(out)
            assert got == {"fraud_score": scored["fraud_score"], "is_fraud": scored["is_fraud"],
                           "risk_level": scored["risk_level"], "threshold_used": scorer.threshold}


def test_facade_converts_aware_datetimes_to_utc(scorer):
    v = {f"V{k}": 0.0 for k in range(1, 29)}
    from datetime import timedelta
    local = datetime(2026, 1, 1, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    utc = datetime(2026, 1, 2, 1, 30)
    assert (scorer.compute_features(10.0, local, v) == scorer.compute_features(10.0, utc, v)).all()
    with pytest.raises(ValueError, match="bad timestamp"):
        scorer.compute_features(10.0, "2026-01-01T00:00:00+02:00", v)
    with pytest.raises(ValueError, match="V28"):
        scorer.compute_features(10.0, utc, {k: 0.0 for k in list(v)[:-1]})


@SETTINGS
@given(st.lists(st.one_of(st.binary(max_size=80), st.none(), st.text(max_size=10)), max_size=8))
def test_score_batch_never_raises_for_bad_input(scorer, values):
    result = scorer.score_batch(values)
    assert result.scored == [] and result.alerts == []
    assert [i for i, _ in result.dead] == list(range(len(values)))


def test_empty_batch(scorer):
    result = scorer.score_batch([])
    assert (result.scored, result.alerts, result.dead) == ([], [], [])


@pytest.mark.parametrize("one", [b'{"amount": 1.0}', bytearray(b"{}"), "{}"])
def test_one_value_instead_of_a_sequence_is_a_type_error(scorer, one):
    # each byte or character would have been a dead letter of its own
    with pytest.raises(TypeError, match=f"a sequence of values .* got one {type(one).__name__}"):
        scorer.score_batch(one)
