"""`bench drain` end to end on the real broker: pre-load, drain, figures, exactly-once check."""

import subprocess
import sys

import msgspec
import pytest

from bench.drain.result import DrainResult
from tests.kafka.eos_harness import REPO

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def test_drain_reports_rate_cpu_and_an_exactly_once_verdict(kafka_bootstrap, tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench.cli", "drain", "--records", "30000",
                          "--workers", "2", "--batch-max-records", "2000", "--out", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stdout + out.stderr
    # the file reads back with its type: every field there, with the type it should have
    result = msgspec.json.decode(next(tmp_path.glob("drain-*/result.json")).read_bytes(), type=DrainResult)
    assert result.records == 30000 and result.workers == 2
    v = result.verdict
    assert (v.scored, v.missing, v.duplicated, v.unexpected) == (30000, 0, 0, 0)
    assert v.alerts > 0 and v.alerts_mismatched == 0 and v.dead_letters == 0 and v.exactly_once
    assert result.steady_tps > 0 and result.transactions >= 15   # batches of at most 2,000
    assert 0 < result.mean_batch <= 2000
    assert result.cpu_cores["scorers"] > 0 and result.cpu_cores["broker"] > 0
    assert 0 < result.commit_p50_ms <= result.commit_p99_ms
    assert "exactly once" in out.stdout


def test_drain_rejects_a_tiny_record_count():
    out = subprocess.run([sys.executable, "-m", "bench.cli", "drain", "--records", "5"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--records" in out.stderr


def test_drain_rejects_a_malformed_client_setting():
    out = subprocess.run([sys.executable, "-m", "bench.cli", "drain", "-X", "linger.ms"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "KEY=VALUE" in out.stderr
