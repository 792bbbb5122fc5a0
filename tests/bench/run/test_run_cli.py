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
    (["run", "scenarios/steady.yaml", "--namespace", "x"], "--namespace is for --external-scorer only"),
    (["broker", "up", "--port", "70000"], "70000 is not in the range"),
    (["model", "speed", "--batch", "0"], "0 is not in the range x>=1"),
    (["model", "speed", "--repeat", "0"], "0 is not in the range x>=1"),
    (["run", "scenarios/steady.yaml", "--repeat", "3"], "apply to a `max` rate search only"),
    (["run", "scenarios/peak.yaml", "--repeat", "0"], "0 is not in the range 1<=x<=50"),
    (["run", "scenarios/peak.yaml", "--confirm", "-1"], "is not in the range 0<=x<=3600"),
    (["run", "scenarios/peak.yaml", "--confirm-steps", "7"], "7 is not in the range 0<=x<=6"),
    (["run", "scenarios/steady.yaml", "--confirm-steps", "1"], "apply to a `max` rate search only"),
    # `--namespace "$NS"` with NS unset: it meant the default topics (and deleted them)
    (["topics", "delete", "--namespace", "", "--yes", "--bootstrap", "127.0.0.1:1"],
     "Invalid value for '--namespace': empty; leave it out for the default topics"),
    (["topics", "create", "--namespace", " ", "--bootstrap", "127.0.0.1:1"], "--namespace': empty"),
    (["produce", "--namespace", "", "--bootstrap", "127.0.0.1:1"], "--namespace': empty"),
    (["run", "scenarios/peak.yaml", "--external-scorer", "--namespace", ""], "--namespace': empty"),
    # `--bootstrap "$BROKERS"` with BROKERS unset: librdkafka retried "" for 10 s, and bench
    # run / drain took it for "no cluster given" and started a local broker
    (["topics", "create", "--bootstrap", ""], "Invalid value for '--bootstrap': empty; give host:port"),
    (["alerts", "--bootstrap", " "], "--bootstrap': empty"),
    (["alerts", "--group", ""], "Invalid value for '--group': empty; leave it out for the default"),
    (["run", "scenarios/peak.yaml", "--bootstrap", ""], "--bootstrap': empty"),
    (["drain", "--bootstrap", ""], "--bootstrap': empty"),
    (["score", "--bootstrap", ""], "Invalid value for '--bootstrap': empty; give host:port"),
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


@pytest.mark.parametrize("args, scenario, message", [
    (["drain", "-X", "isolation.level=read_uncommitted"], None,
     "error: bench drain --batch-max-records / --batch-max-wait-ms / -X: the scoring service would refuse it: "
     "kafka.isolation.level: reserved, the exactly-once loop controls it"),
    (["drain", "--batch-max-records", "200000"], None, "batch_max_records: Expected `int` <= 100000"),
    (["drain", "-X", "no.such.key=1"], None, 'No such configuration property: "no.such.key"'),
    (["run"], "name: x\nrate: {profile: constant, tps: 5}\nbatch: {max_records: 1000000}\n",
     ": batch or the target's scorer settings: the scoring service would refuse it: invalid scoring config: "
     "batch_max_records: Expected `int` <= 100000"),
    (["run"], "name: x\nrate: {profile: constant, tps: 5}\ntarget: {scorer: {enable.idempotence: false}}\n",
     "kafka.enable.idempotence: reserved"),
    (["run"], "name: x\nrate: {profile: constant, tps: 5}\nduration_s: 9\nfaults: [{at_s: 2, kill: broker, index: 1}]\n",
     "faults[0].index (1) names no broker node: the target has 1 (0..0) - at $.faults[0].index"),
])
def test_what_the_service_would_refuse_is_refused_before_any_broker_or_load(tmp_path, args, scenario, message):
    """The port-1 bootstrap shows it: these failed only after the broker check, the topics and
    the pre-load (bench drain) or the broker's warm-up (bench run), minutes in, as the
    service's exit and log tail."""
    if scenario is not None:
        (tmp_path / "s.yaml").write_text(scenario)
        args = args + [str(tmp_path / "s.yaml"), "--quiet"]
    proc = subprocess.run(BENCH + args + ["--bootstrap", "127.0.0.1:1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "cannot reach Kafka" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: ") and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


@pytest.mark.parametrize("cmd", [["drain", "--records", "1000"], ["run", "scenarios/steady.yaml", "--quiet"]])
def test_an_out_dir_that_cannot_be_made_is_one_line_before_anything_starts(tmp_path, cmd):
    """bench drain died with a FileNotFoundError traceback when the service started (after
    the pre-load), bench run after the broker's warm-up."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = subprocess.run(BENCH + cmd + ["--bootstrap", "127.0.0.1:1", "--out", str(blocker / "results")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr == f"error: --out {blocker / 'results'}: cannot create it: Not a directory\n"
