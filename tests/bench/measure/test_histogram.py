"""HdrHistogram helpers: batch recording fills the counters exactly as one-by-one does, merging encoded parts is lossless."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.measure import histogram


def _one_by_one(values) :
    h = histogram.new_histogram()
    for v in values:
        h.record_value(min(max(v, 1), histogram.MAX_US))
    return h


def _state(h):
    return (np.frombuffer(h.counts, dtype=np.uint64).tolist(), h.total_count, h.min_value,
            h.max_value)


def test_batch_recording_equals_value_by_value():
    seed = 1234
    print("seed", seed)
    values = np.random.default_rng(seed).lognormal(8, 1.5, size=20_000).astype(np.int64) + 1
    one = histogram.new_histogram()
    for v in values.tolist():
        one.record_value(min(v, histogram.MAX_US))
    batch = histogram.new_histogram()
    histogram.record_array(batch, values)
    assert histogram.summary(batch) == histogram.summary(one)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(-10, 2 * histogram.MAX_US), max_size=300), max_size=4))
def test_batches_fill_the_same_counts_as_hdrh(batches):
    """Every counter, the total, min and max: as hdrh's own record_value leaves them, with
    out-of-range values clamped to [1, MAX_US] and several batches into one histogram."""
    batch = histogram.new_histogram()
    for values in batches:
        histogram.record_array(batch, np.array(values, dtype=np.int64))
    assert _state(batch) == _state(_one_by_one([v for values in batches for v in values]))


def test_every_bucket_boundary_lands_where_hdrh_puts_it():
    powers = [1 << k for k in range(30)]
    values = sorted({max(1, p + d) for p in powers for d in (-1, 0, 1)} | {histogram.MAX_US})
    batch = histogram.new_histogram()
    histogram.record_array(batch, np.array(values))
    assert _state(batch) == _state(_one_by_one(values))


def test_merge_of_encoded_parts_equals_the_whole():
    rng = np.random.default_rng(7)
    parts = [rng.integers(1, 200_000, size=n) for n in (1000, 5000, 1)]
    blobs = []
    for p in parts:
        h = histogram.new_histogram()
        histogram.record_array(h, p)
        blobs.append(histogram.encode(h))
    whole = histogram.new_histogram()
    histogram.record_array(whole, np.concatenate(parts))
    merged = histogram.merge(blobs)
    assert merged.get_total_count() == 6001
    assert histogram.summary(merged) == histogram.summary(whole)


def test_summary_in_milliseconds_and_empty():
    h = histogram.new_histogram()
    assert histogram.summary(h).p99_ms is None
    histogram.record_array(h, np.array([1000] * 99 + [50_000]))
    s = histogram.summary(h)
    assert s.p50_ms == 1.0 and s.count == 100
    assert abs(s.max_ms - 50.0) <= 0.05  # hdr resolution: 3 significant digits


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, histogram.MAX_US), max_size=500))
def test_mean_equals_hdrh_mean(values):
    """mean_us (numpy over the counters) is exactly hdrh's get_mean_value, which walks them."""
    h = histogram.new_histogram()
    histogram.record_array(h, np.array(values, dtype=np.int64))
    assert histogram.mean_us(h) == h.get_mean_value()
