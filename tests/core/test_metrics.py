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


def test_state_summary_shows_cards_restore_progress_holds_and_the_last_restore():
    from core.statemetrics import state_summary

    assert state_summary({"fraudstream_scored_total": 5.0}) == ""   # no worker keeps state
    idle = state_summary({"fraudstream_state_cards": 1234567.0, "fraudstream_state_bytes": 3.0e8,
                          "fraudstream_state_last_restore_seconds": 2.5})
    assert idle == " | state 1,234,567 cards 300.0 MB, last restore 2.50 s"
    busy = state_summary({"fraudstream_state_cards": 10.0, "fraudstream_state_bytes": 0.0,
                          "fraudstream_state_restoring_partitions": 1.0, "fraudstream_state_restore_records": 500.0,
                          "fraudstream_state_restore_target_records": 2000.0,
                          "fraudstream_state_replay_records": 3.0, "fraudstream_state_replay_target_records": 9.0,
                          "fraudstream_state_held_partitions": 2.0})
    assert ("restoring 1 partition(s): 500/2,000 records, replaying 3/9, 2 partition(s) held" in busy
            and "last restore" not in busy)


def test_the_supervisors_line_carries_the_live_workers_state(tmp_path):
    # A worker's state gauges count while it lives (livesum): read them from a live process.
    import subprocess
    import sys

    from core.metrics import MULTIPROC_ENV, aggregate

    code = ("import sys; from core.statemetrics import StateGauges; g = StateGauges.get(); "
            "g.cards.set(4200); g.bytes.set(2.5e6); g.last_seconds.set(1.25); print('ready', flush=True); "
            "sys.stdin.read()")
    worker = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, MULTIPROC_ENV: str(tmp_path)})
    try:
        assert worker.stdout.readline().strip() == "ready"
        snap = aggregate(str(tmp_path))
    finally:
        worker.communicate("")
    line = format_stats(snap, StatsSnapshot(), 10.0, "all 1 workers")
    assert line.endswith("lag=0 | state 4,200 cards 2.5 MB, last restore 1.25 s"), line


def test_healthz_reads_paused_partitions_and_unreachable_workers_from_live_workers(tmp_path):
    # Two live "workers" with their own gauges (livesum), one read of their files for /healthz.
    import subprocess
    import sys

    from core.metrics import MULTIPROC_ENV, worker_conditions

    code = ("import sys; from core.metrics import LoopMetrics; from core.offsets import offset_reset_paused; "
            "from core.stateholds import _held_gauge; m = LoopMetrics.shared(); "
            "m.set_unreachable(True) if sys.argv[1] == 'down' else None; offset_reset_paused().set(int(sys.argv[2])); "
            "_held_gauge().set(int(sys.argv[3])); print('ready', flush=True); sys.stdin.read()")
    workers = [subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, env={**os.environ, MULTIPROC_ENV: str(tmp_path)})
               for args in (("down", "1", "0"), ("up", "0", "2"))]
    try:
        assert [w.stdout.readline().strip() for w in workers] == ["ready", "ready"]
        paused, unreachable = worker_conditions(str(tmp_path))
    finally:
        for w in workers:
            w.communicate("")
    assert paused == {"card_state_held": 2, "offset_reset_refused": 1} and unreachable == 1


def test_healthz_answers_500_when_a_metrics_file_cannot_be_read():
    # prometheus_client raises RuntimeError for a torn multiprocess file: the handler answered
    # nothing (a dropped connection and a traceback on stderr per request) before
    import socket
    import urllib.error
    import urllib.request

    from prometheus_client import CollectorRegistry

    from core.health import serve_http

    def torn():
        raise RuntimeError("Read beyond file size detected, gauge_livesum_7.db is corrupted.")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = serve_http(port, CollectorRegistry(), lambda: (), torn)
    try:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert info.value.code == 500 and b"gauge_livesum_7.db is corrupted" in info.value.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as ok:
            assert ok.status == 200   # the other path is unaffected
    finally:
        server.shutdown()
