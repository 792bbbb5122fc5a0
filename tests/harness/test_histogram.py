"""HdrHistogram helpers: batch recording equals one-by-one, merging encoded parts is lossless."""

import numpy as np

from bench import histogram


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
    assert histogram.summary(h)["p99_ms"] is None
    histogram.record_array(h, np.array([1000] * 99 + [50_000]))
    s = histogram.summary(h)
    assert s["p50_ms"] == 1.0 and s["count"] == 100
    assert abs(s["max_ms"] - 50.0) <= 0.05  # hdr resolution: 3 significant digits
