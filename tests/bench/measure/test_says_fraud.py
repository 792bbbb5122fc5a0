"""The sink's reading of `is_fraud` from an output value, against a JSON parser."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.load import synth
from bench.measure.sink import says_fraud
from core import Scorer


@pytest.fixture(scope="module", autouse=True)
def _stateless(stateless_model):
    """These tests score without per-card state: the stateless model (tests/conftest.py)."""


def test_the_scorers_own_outputs_read_as_the_json_says():
    batch = synth.generate(5_000, seed=11, fraud_rate=0.05)
    result = Scorer.load().score_batch(batch.payloads())
    values = [v for _, v in result.scored]
    expected = [json.loads(v)["is_fraud"] for v in values]
    assert any(expected) and not all(expected)
    assert says_fraud(values) == expected


_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=30) | st.sampled_from(
    ['"is_fraud":true', 'is_fraud', '"is_fraud": true}', ':true'])
_fields = st.dictionaries(_text, _text | st.integers() | st.booleans() | st.none(), max_size=8)


@settings(max_examples=300)
@given(_fields, st.booleans(), st.booleans(), st.sampled_from([(",", ":"), (", ", ": ")]))
def test_any_input_fields_then_the_scorers_fields(fields, is_fraud, risk_after, separators):
    # the scorer's fields come after the input's: compact (fraudstream) or spaced (the seed's
    # json.dumps); an input field called is_fraud is overridden by the later one, as in JSON
    out = {**fields, "fraud_score": 0.5}
    out.pop("is_fraud", None)
    out["is_fraud"] = is_fraud
    if risk_after:
        out["risk_level"] = "HIGH"
    value = json.dumps(out, separators=separators, ensure_ascii=False).encode()
    assert says_fraud([value]) == [json.loads(value)["is_fraud"]]


def test_values_without_a_true_is_fraud_field_say_no():
    assert says_fraud([b"{}", b'{"is_fraud"', b'{"is_fraud":tru', b'{"x":"\\"is_fraud\\":true"}']) == \
        [False, False, False, False]
