"""`bench run` / `bench report` command-line behaviour that needs no broker."""

import subprocess
import sys
from pathlib import Path

BENCH = [sys.executable, "-m", "bench.cli"]


def test_a_bad_scenario_is_one_line_and_exit_1(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nrate: {profile: constant, tps: -1}\n")
    proc = subprocess.run(BENCH + ["run", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {bad}: Expected float > 0.0 - at $.rate.tps"


def test_help_shows_an_example():
    for cmd in ("run", "report"):
        out = subprocess.run(BENCH + [cmd, "--help"], capture_output=True, text=True, timeout=60).stdout
        assert "Example" in out and "bench " + cmd in out
