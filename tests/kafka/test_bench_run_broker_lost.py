"""`bench run` on a local broker that dies under it: an error within seconds naming the
broker's log, not a minute of waiting and a verdict of missing records."""

import os
import signal
import subprocess
import sys
import time

import pytest

from bench.broker import status, stop
from tests.kafka.test_broker import bench_cli

pytestmark = pytest.mark.kafka

SCENARIO = """
name: lost
duration_s: 60
warmup_s: 1
rate: {profile: constant, tps: 200}
topology: {partitions: 6, scoring_processes: 1}
"""


def test_a_broker_killed_mid_run_ends_the_run_at_once(spare_port, tmp_path):
    port = str(spare_port)
    scenario = tmp_path / "lost.yaml"
    scenario.write_text(SCENARIO)
    run = None
    try:
        up = bench_cli("broker", "up", "--port", port, "--data-dir", str(tmp_path / "data"))
        assert up.returncode == 0, up.stderr
        run = subprocess.Popen(
            [sys.executable, "-m", "bench.cli", "run", str(scenario), "--no-plots", "--out", str(tmp_path)],
            env={**os.environ, "FRAUDSTREAM_PORT": port}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        seen = []
        for line in run.stdout:             # the first scored record has been seen
            seen.append(line)
            if line.startswith(("broker warm-up", "measure")):
                break
        assert run.poll() is None, "".join(seen)
        (node,) = status(spare_port)
        os.kill(node["pid"], signal.SIGKILL)
        t_kill = time.monotonic()
        rest, _ = run.communicate(timeout=60)
        took = time.monotonic() - t_kill
        assert run.returncode == 1, rest
        said = " ".join(rest.split())       # the console wraps long lines
        assert f"port {port} has stopped; see" in said and "broker.log" in said
        assert "stay on the stopped broker" in said
        assert took < 15, f"{took:.1f} s after the kill"
    finally:
        if run is not None and run.poll() is None:
            run.kill()                      # its service and children watch for an orphaned parent
            run.wait()
        stop(spare_port, wipe=True)
