"""core.encode: spliced scored events are valid JSON equal to input + score fields."""

import json

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.decode import decode_batch
from core.encode import (
    append_reasons, batch_tail, encode_alert, iso_now, quantize, score_of, splice_scores,
)
from core.risk import LEVEL_NAMES
from core.schema import SCORE_FIELD_NAMES, Alert, Reason, ScoredEvent, ScoreFields
from tests.core.strategies import raw_transactions
from tests.core.test_decode import raw

SETTINGS = settings(deadline=None, max_examples=100,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def splice(values, q, is_fraud, level, tail=None):
    d = decode_batch(values)
    assert d.dead == []
    tail = tail or batch_tail(0.7, "2026-01-01T00:00:00.000000Z", 1.25, "xgb-test")
    scores = (np.asarray(q, dtype=np.float64) / 1e6).astype(np.float32)
    scored, got = splice_scores(d.buf, d.starts, d.close, d.good, scores,
                                np.asarray(is_fraud, dtype=bool),
                                np.asarray(level, dtype=np.uint8), tail)
    assert got.tolist() == list(q) == quantize(scores).tolist()
    assert [r for r, _ in scored] == d.good.tolist()
    assert all(type(r) is int and type(out) is bytes for r, out in scored)
    return [out for _, out in scored]


@pytest.mark.parametrize("score, q", [
    (0.0, 0), (1.0, 1_000_000), (0.5, 500_000), (0.1234565, 123_457), (0.1234564, 123_456),
    (np.float32(0.7254994), 725_499), (1e-9, 0), (-0.0, 0),
])
def test_quantize_rounds_half_up_to_millionths(score, q):
    assert quantize(np.array([score], dtype=np.float32))[0] == q


@pytest.mark.parametrize("q, text", [
    (0, b"0.0"), (5, b"0.000005"), (10, b"0.00001"), (123_450, b"0.12345"),
    (999_999, b"0.999999"), (1_000_000, b"1.0"), (500_000, b"0.5"),
])
def test_fraud_score_is_written_with_at_most_six_decimals(q, text):
    [out] = splice([raw()], [q], [False], [0])
    assert b'"fraud_score":' + text + b',' in out
    assert json.loads(out)["fraud_score"] == score_of(q)


@pytest.mark.parametrize("level", range(4))
@pytest.mark.parametrize("is_fraud", [False, True])
def test_score_fields_follow_the_input_fields(level, is_fraud):
    value = raw(extra={"nested": [1, {"k": None}]}, schema_v=3)
    tail = batch_tail(0.7254993915557861, "2026-11-28T10:00:00.000001Z", 0.0451, "xgb-abc")
    [out] = splice([value], [42], [is_fraud], [level], tail)
    scored = json.loads(out)
    expected = dict(json.loads(value), fraud_score=0.000042, is_fraud=is_fraud,
                    risk_level=LEVEL_NAMES[level], threshold=0.7254993915557861,
                    scored_at="2026-11-28T10:00:00.000001Z", scoring_latency_ms=0.045,
                    model_version="xgb-abc")
    assert scored == expected
    assert list(scored)[-len(SCORE_FIELD_NAMES):] == list(SCORE_FIELD_NAMES)
    fields = msgspec.json.decode(b"{" + out[out.index(b'"fraud_score"'):], type=ScoreFields)
    assert fields.risk_level == LEVEL_NAMES[level]


def test_trailing_whitespace_and_odd_spacing_do_not_break_the_splice():
    value = b'\n { "transaction_id" : "t" ,' + raw()[len(b'{"transaction_id":"t1",'):-1] + \
        b' \t}\r\n  '
    [out] = splice([value], [1], [False], [0])
    assert json.loads(out)["transaction_id"] == "t"
    assert out.endswith(b'"model_version":"xgb-test"}')


@SETTINGS
@given(st.lists(raw_transactions(), min_size=1, max_size=6), st.data())
def test_every_output_decodes_to_input_plus_score_fields(pairs, data):
    values = [value for _, value in pairs]
    n = len(values)
    q = data.draw(st.lists(st.integers(0, 1_000_000), min_size=n, max_size=n))
    level = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    outs = splice(values, q, [lv >= 2 for lv in level], level)
    for (tx, value), out, qi, lv in zip(pairs, outs, q, level):
        scored = json.loads(out)
        assert {k: scored[k] for k in tx} == json.loads(value)  # unknown fields preserved
        assert set(scored) - set(tx) == set(SCORE_FIELD_NAMES)
        assert scored["fraud_score"] == score_of(qi)
        assert scored["risk_level"] == LEVEL_NAMES[lv]
        assert scored["is_fraud"] is (lv >= 2)


def test_iso_now_is_utc_with_microseconds():
    now = iso_now()
    assert len(now) == 27 and now.endswith("Z") and now[10] == "T"


REASONS = (Reason(code="AMOUNT_MICRO", value=1.0, contribution=2.3456, text="micro \"amount\""),
           Reason(code="HOUR_OF_DAY", value=3.0, contribution=0.5, text="made between 03:00 and "
                  "03:59 UTC"),
           Reason(code="BEHAVIOUR_V14", value=-2.123456, contribution=0.0001, text="é"))


@pytest.mark.parametrize("level, action", [(3, "BLOCK"), (2, "REVIEW"), (1, "REVIEW")])
def test_alert_follows_the_wire_contract(level, action):
    value = raw(transaction_id="tx-9", amount=999.5, merchant_category="travel")
    out = encode_alert(value, 987_654, level, "2026-11-28T10:00:00Z", "xgb-abc", REASONS)
    alert = msgspec.json.decode(out, type=Alert)
    assert alert == Alert(alert_id="alert_tx-9", transaction_id="tx-9", card_hash="c1",
                          amount=999.5, fraud_score=0.987654, risk_level=LEVEL_NAMES[level],
                          merchant_category="travel", timestamp="2026-03-01T13:45:00.123Z",
                          alert_time="2026-11-28T10:00:00Z", action_required=action,
                          model_version="xgb-abc", reasons=REASONS)
    plain = json.loads(out)
    assert list(plain)[-2:] == ["model_version", "reasons"]
    assert [list(r) for r in plain["reasons"]] == [["code", "value", "contribution", "text"]] * 3
    assert plain["reasons"][0] == {"code": "AMOUNT_MICRO", "value": 1.0, "contribution": 2.3456,
                                   "text": 'micro "amount"'}


@pytest.mark.parametrize("reasons", [REASONS, REASONS[:1], ()])
def test_reasons_are_the_last_field_of_a_flagged_scored_event(reasons):
    value = raw(extra={"nested": {"reasons_like": 1}}, schema_v=3)
    [out] = splice([value], [900_000], [True], [3])
    with_reasons = append_reasons(out, reasons)
    scored = json.loads(with_reasons)  # valid JSON, no duplicate key
    assert list(scored) == list(json.loads(out)) + ["reasons"]
    assert msgspec.json.decode(with_reasons, type=ScoredEvent).reasons == reasons
    assert with_reasons.endswith(b'"model_version":"xgb-test","reasons":' +
                                 msgspec.json.encode(reasons) + b"}")


def test_row_indices_past_16_bits_and_reused_buffers_keep_outputs_apart():
    d = decode_batch([raw(), raw(transaction_id="t2")])
    n = 70_000  # the kernel writes row indices as 32-bit pickle ints
    starts, close = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    starts[[n - 1, 5]], close[[n - 1, 5]] = d.starts, d.close
    tail = batch_tail(0.7, "2026-01-01T00:00:00.000000Z", 1.25, "xgb-test")
    first, _ = splice_scores(d.buf, starts, close, np.array([n - 1, 5]),
                             np.array([0.25, 0.75], dtype=np.float32), np.array([False, True]),
                             np.array([0, 3], dtype=np.uint8), tail)
    second, _ = splice_scores(d.buf, starts, close, np.array([5]), np.array([1.0], np.float32),
                              np.array([True]), np.array([3], dtype=np.uint8), tail)
    assert [r for r, _ in first] == [n - 1, 5] and [r for r, _ in second] == [5]
    events = [json.loads(out) for _, out in first + second]
    assert [e["transaction_id"] for e in events] == ["t1", "t2", "t2"]
    assert [e["fraud_score"] for e in events] == [0.25, 0.75, 1.0]
