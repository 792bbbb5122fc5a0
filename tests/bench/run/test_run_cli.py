"""`bench run` / `bench report` command-line behaviour that needs no broker."""

import subprocess
import sys
from pathlib import Path

import pytest

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


def test_a_bad_override_is_refused_before_anything_starts():
    proc = subprocess.run(BENCH + ["run", "scenarios/steady.yaml", "--tps", "-5"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Invalid value for '--tps': -5.0 is not in the range x>0." in proc.stderr
    assert "broker" not in proc.stderr


def test_overrides_are_checked_against_the_rest_of_the_scenario():
    # failover.yaml kills a scoring process 8 s in: a 5 s run would never do it
    proc = subprocess.run(BENCH + ["run", "scenarios/failover.yaml", "--duration", "5"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("error: scenarios/failover.yaml with the command line's options: "
                                   "faults[0].at_s (8.0) is not inside duration_s (5.0) - at $.faults[0].at_s")


def test_report_of_a_file_that_is_not_a_result_is_one_line(tmp_path: Path):
    for name, text, why in [("a.yaml", "name: x\n", "not a bench run result (JSON): JSON is malformed"),
                            ("b.json", "[1]", "not a bench run result: Expected object, got array - at $")]:
        path = tmp_path / name
        path.write_text(text)
        proc = subprocess.run(BENCH + ["report", str(path)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1
        assert proc.stderr.startswith(f"error: {path}: {why}") and proc.stderr.count("\n") == 1


def test_no_broker_is_one_line_not_the_client_log():
    # port 1: nothing listens; librdkafka would otherwise log a reconnect every 50 ms
    for cmd in (["topics", "create"], ["produce", "--tps", "10"], ["drain", "--records", "1000"],
                ["run", "scenarios/steady.yaml", "--duration", "5"]):
        proc = subprocess.run(BENCH + cmd + ["--bootstrap", "127.0.0.1:1"], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 1
        assert proc.stderr.startswith("error: cannot reach Kafka at 127.0.0.1:1: "), (cmd, proc.stderr)
        assert proc.stderr.count("\n") == 1, proc.stderr


@pytest.mark.parametrize("args,message", [
    (["run", "scenarios/steady.yaml", "--external-scorer"], "--external-scorer needs --namespace"),
    (["broker", "up", "--port", "70000"], "70000 is not in the range"),
    (["model", "speed", "--batch", "0"], "0 is not in the range x>=1"),
    (["model", "speed", "--repeat", "0"], "0 is not in the range x>=1"),
    (["run", "scenarios/steady.yaml", "--repeat", "3"], "apply to a `max` rate search only"),
    (["run", "scenarios/peak.yaml", "--repeat", "0"], "0 is not in the range 1<=x<=50"),
    (["run", "scenarios/peak.yaml", "--confirm", "-1"], "is not in the range 0<=x<=3600"),
])
def test_a_bad_command_line_exits_2_before_doing_anything(args, message):
    proc = subprocess.run(BENCH + args, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_report_plot_without_a_comparison_is_a_bad_command_line(tmp_path):
    result = tmp_path / "result.json"
    result.write_text("{}")
    proc = subprocess.run(BENCH + ["report", str(result), "--plot", str(tmp_path / "x.png")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--plot needs --compare" in proc.stderr
