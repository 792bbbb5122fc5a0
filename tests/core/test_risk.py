"""Threshold and risk-band boundaries: exact edges, and classify() against a plain rule."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.risk import CRITICAL, HIGH, LEVEL_NAMES, LOW, MEDIUM, Bands, RiskBands

EDGES = Bands(medium=0.125, high=0.5, critical=0.875)   # exact in float32


@pytest.fixture
def risk() -> RiskBands:
    return RiskBands(0.5, EDGES)


def test_level_names_order():
    assert LEVEL_NAMES == ("LOW", "MEDIUM", "HIGH", "CRITICAL")
    assert (LOW, MEDIUM, HIGH, CRITICAL) == (0, 1, 2, 3)


@pytest.mark.parametrize("score, level, fraud", [
    (0.0, LOW, False),
    (np.nextafter(np.float32(0.125), np.float32(0)), LOW, False),
    (0.125, MEDIUM, False),                        # edges are inclusive on the lower side
    (np.nextafter(np.float32(0.5), np.float32(0)), MEDIUM, False),
    (0.5, HIGH, True),                             # score == threshold is fraud
    (np.nextafter(np.float32(0.875), np.float32(0)), HIGH, True),
    (0.875, CRITICAL, True),
    (1.0, CRITICAL, True),
])
def test_exact_edges(risk, score, level, fraud):
    is_fraud, levels = risk.classify(np.array([score], dtype=np.float32))
    assert levels.tolist() == [level] and is_fraud.tolist() == [fraud]
    assert risk.level_of(float(score)) == level
    assert risk.is_fraud(float(score)) is fraud


def test_nan_is_low_and_not_fraud(risk):
    is_fraud, levels = risk.classify(np.array([np.nan], dtype=np.float32))
    assert levels.tolist() == [LOW] and is_fraud.tolist() == [False]


def test_classify_types(risk):
    is_fraud, levels = risk.classify(np.linspace(0, 1, 11, dtype=np.float32))
    assert is_fraud.dtype == np.bool_ and levels.dtype == np.uint8
    assert levels.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3]


@pytest.mark.parametrize("bands, threshold", [
    (Bands(0.6, 0.5, 0.9), 0.5),     # medium above high
    (Bands(0.1, 0.5, 0.4), 0.5),     # critical below high
    (Bands(0.1, 0.5, 1.5), 0.5),     # outside [0, 1]
    (Bands(0.1, 0.5, 0.9), 0.6),     # HIGH must start at the threshold
])
def test_invalid_bands_rejected(bands, threshold):
    with pytest.raises(ValueError):
        RiskBands(threshold, bands)


edges_st = st.lists(st.floats(0, 1, width=32), min_size=3, max_size=3).map(sorted)


@settings(deadline=None, max_examples=200)
@given(edges=edges_st, scores=st.lists(st.floats(0, 1, width=32), min_size=1, max_size=50))
def test_classify_matches_the_rule(edges, scores):
    medium, high, critical = edges
    risk = RiskBands(high, Bands(medium, high, critical))
    x = np.array(scores + edges, dtype=np.float32)
    is_fraud, levels = risk.classify(x)
    for s, f, lvl in zip(x.tolist(), is_fraud.tolist(), levels.tolist()):
        expected = (CRITICAL if s >= critical else HIGH if s >= high
                    else MEDIUM if s >= medium else LOW)
        assert lvl == expected == risk.level_of(s)
        assert f == (s >= high) == risk.is_fraud(s)
