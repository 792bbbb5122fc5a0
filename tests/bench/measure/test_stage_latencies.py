"""Splitting end-to-end latency at the output's millisecond timestamp (bench.measure.sink)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from bench.measure.sink import stage_latencies

MS = 1_000_000
T0 = 1_795_000_000 * 10**9   # an epoch in ns, late 2026


@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9)),
                min_size=1, max_size=50))
def test_the_stages_add_up_to_end_to_end_and_follow_the_output_time(gaps):
    """intended <= produced <= visible, with the output time truncated to whole ms as Kafka does."""
    intended = np.array([T0 + a for a, _, _ in gaps], dtype=np.int64)
    produced = intended + np.array([b for _, b, _ in gaps], dtype=np.int64)
    visible = int((produced + np.array([c for _, _, c in gaps])).max())
    e2e, until, after = stage_latencies(intended, produced // MS, visible)
    assert np.array_equal(e2e, (visible - intended) // 1000)
    assert np.array_equal(until + after, e2e)
    assert (until >= 0).all() and (after >= 0).all()
    true_until = (produced - intended) // 1000
    assert (np.abs(until - true_until) <= 1000).all()   # within the timestamp's 1 ms


def test_an_output_stamped_before_its_intended_time_counts_as_scored_at_once():
    intended = np.array([T0 + 900_000], dtype=np.int64)     # 0.9 ms into a millisecond
    e2e, until, after = stage_latencies(intended, np.array([T0 // MS]), T0 + 5 * MS)
    assert (e2e[0], until[0], after[0]) == (4_100, 0, 4_100)
