"""Stats arithmetic: bucket quantiles, the stats line, per-process snapshots."""

import os

import pytest
from prometheus_client import CollectorRegistry

from core.metrics import LoopMetrics, StatsSnapshot, bucket_quantile, format_stats


def test_bucket_quantile_interpolates_inside_a_bucket():
    buckets = [(0.001, 0.0), (0.002, 50.0), (0.005, 100.0), (float("inf"), 100.0)]
    assert bucket_quantile(buckets, 0.5) == pytest.approx(0.002)
    assert bucket_quantile(buckets, 0.25) == pytest.approx(0.0015)
    assert bucket_quantile(buckets, 0.99) == pytest.approx(0.002 + 0.003 * 49 / 50)
    assert bucket_quantile([], 0.5) == 0.0


def test_snapshot_counts_and_exact_percentiles():
    m = LoopMetrics(registry=CollectorRegistry())
    for ms in range(1, 101):
        m.record_batch(records=10, scored=9, alerts=1, dead=1, commit_s=ms / 1000)
    m.record_abort()
    s = m.snapshot()
    assert (s.processed, s.alerts, s.deadletters, s.batches, s.aborts) == (900, 100, 100, 100, 1)
    assert s.commit_p50_ms == pytest.approx(50, rel=0.01)
    assert s.commit_p99_ms == pytest.approx(99, rel=0.01)
    assert s.mean_batch == 10


def test_stats_line_reports_rate_and_batch():
    before = StatsSnapshot(processed=1000, batches=10)
    now = StatsSnapshot(processed=21000, deadletters=0, batches=20, commit_p50_ms=3.0, lag=5)
    line = format_stats(now, before, 10.0, "w0")
    assert line.startswith("w0: processed=21,000 (2,000/s)")
    assert "batch=2,000" in line and "commit_p50=3.0ms" in line and "lag=5" in line


def test_aggregate_skips_the_empty_file_of_a_worker_killed_while_starting(tmp_path):
    # A real worker's multiprocess files, written by a separate process as the service does.
    import subprocess
    import sys

    from core.metrics import MULTIPROC_ENV, aggregate

    code = ("from core.metrics import LoopMetrics; m = LoopMetrics.shared(); "
            "m.record_batch(100, 98, 3, 2, 0.004)")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, MULTIPROC_ENV: str(tmp_path)})
    (tmp_path / "counter_999999.db").write_bytes(b"")
    (tmp_path / "histogram_999999.db").write_bytes(b"")
    snap = aggregate(str(tmp_path))
    assert (snap.processed, snap.alerts, snap.deadletters, snap.batches) == (98, 3, 2, 1)
    assert 3.0 < snap.commit_p50_ms <= 5.0
