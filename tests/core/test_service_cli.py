"""The service front ends without a broker: help with an example, clear start-up errors."""

import subprocess
import sys

from click.testing import CliRunner

from bench.cli import cli


def test_python_m_core_help_shows_an_example():
    out = subprocess.run([sys.executable, "-m", "core", "--help"], capture_output=True, text=True, check=True)
    assert "Example" in out.stdout and "bench produce" in out.stdout and "--workers" in out.stdout


def test_bench_score_alerts_produce_help():
    runner = CliRunner()
    for name in ("score", "alerts", "produce"):
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert "Example" in result.output


def test_bad_config_is_one_line_and_exit_1():
    out = subprocess.run([sys.executable, "-m", "core", "--batch-max-records", "0"], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == ["error: invalid scoring config: batch_max_records: Expected `int` >= 1 "
                                               "(from --batch-max-records 0)"]


def test_a_bad_value_names_the_flag_or_the_file_it_came_from(tmp_path):
    """ScoringConfig names its field (state_snapshot_s); the user typed --snapshot-interval, or
    wrote the value in a --config file."""
    out = subprocess.run([sys.executable, "-m", "core", "--snapshot-interval", "nan"], capture_output=True, text=True)
    assert out.returncode == 1 and out.stderr.strip().splitlines() == [
        "error: invalid scoring config: state_snapshot_s: Expected `float` >= 0.0 (from --snapshot-interval nan)"]
    config = tmp_path / "svc.yaml"
    config.write_text("batch_max_records: 0\n")
    out = subprocess.run([sys.executable, "-m", "core", "--config", str(config)], capture_output=True, text=True)
    assert out.returncode == 1 and out.stderr.strip().splitlines() == [
        f"error: invalid scoring config: batch_max_records: Expected `int` >= 1 (in {config})"]
    out = subprocess.run([sys.executable, "-m", "core", "--config", str(config), "--batch-max-records", "-1"],
                         capture_output=True, text=True)
    assert out.stderr.strip().endswith("Expected `int` >= 1 (from --batch-max-records -1)")


def test_zero_workers_is_refused_by_the_parser():
    out = subprocess.run([sys.executable, "-m", "core", "--workers", "0"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == "Error: Invalid value for '--workers': 0 is not in the range 1<=x<=256."


def test_bench_score_and_python_m_core_are_one_command():
    """The service's options are declared once (core.cli): both front ends list the same ones."""
    import re

    core_help = subprocess.run([sys.executable, "-m", "core", "--help"], capture_output=True, text=True,
                               check=True).stdout
    bench_help = CliRunner().invoke(cli, ["score", "--help"]).output
    options = [re.findall(r"^\s+(-{1,2}[\w-]+)", text, re.MULTILINE) for text in (core_help, bench_help)]
    assert options[0] == options[1] and len(options[0]) == 19, options
    assert "--instance-id" in options[0] and "/healthz" in core_help


def test_missing_model_fails_at_start_up_with_a_clear_message(tmp_path):
    missing = tmp_path / "nope.meta.json"
    out = subprocess.run([sys.executable, "-m", "core", "--model", str(missing), "--bootstrap", "127.0.0.1:1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "nope.meta.json" in last

def test_a_metrics_port_in_use_is_one_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "core", "--bootstrap", "127.0.0.1:1", "--workers", "1",
                              "--metrics-port", str(port)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (f"error: cannot serve metrics on port {port}: Address "
                                                   "already in use (--metrics-port 0 turns them off)")


def test_sigterm_during_start_up_is_a_clean_stop():
    """A supervisor (a test, systemd, bench run) may stop the service before it is up: that is
    a clean exit 0 with no traceback, not death by the signal (-15). No broker is needed: the
    service stops before it would connect."""
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "core", "--bootstrap", "127.0.0.1:1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:   # the first log line: still importing and loading the model
        seen.append(line)
        if " config: " in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stderr.read()
    proc.wait(timeout=60)
    log = "".join(seen) + rest
    assert proc.returncode == 0, log[-2000:]
    assert "SIGTERM: stopping workers" in log and "stopped before any worker started" in log
    assert "Traceback" not in log and "cannot reach Kafka" not in log


def test_a_setting_librdkafka_refuses_is_one_line_with_nothing_after():
    """librdkafka's text for a value out of range ends in a newline: it left an empty line."""
    out = subprocess.run([sys.executable, "-m", "core", "--bootstrap", "127.0.0.1:1", "-X", "message.max.bytes=10"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.endswith('error: Kafka producer settings: Configuration property "message.max.bytes" value 10 '
                               'is outside allowed range 1000..1000000000\n'), out.stderr[-500:]


def test_a_cooperative_assignor_is_refused_before_any_worker_starts():
    """Before: every worker died in on_assign and was restarted for ever, a traceback each time."""
    out = subprocess.run([sys.executable, "-m", "core", "--bootstrap", "127.0.0.1:1",
                          "-X", "partition.assignment.strategy=cooperative-sticky"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "error: kafka.partition.assignment.strategy=cooperative-sticky: not supported, the scoring loop assigns "
        "partitions eagerly: use range or roundrobin (the default)"]


def test_a_reserved_kafka_key_names_the_flag_to_use_instead():
    out = subprocess.run([sys.executable, "-m", "core", "-X", "auto.offset.reset=latest"], capture_output=True, text=True)
    assert out.returncode == 1 and out.stderr.strip().splitlines() == [
        "error: kafka.auto.offset.reset: set by the scoring loop itself; use --offset-reset (the ScoringConfig "
        "field offset_reset) instead"]


def test_a_reserved_kafka_key_in_a_config_file_names_the_field():
    """In a file the user writes fields, not flags."""
    out = subprocess.run([sys.executable, "-m", "core", "--config", "/dev/stdin"], input="kafka:\n  group.id: x\n",
                         capture_output=True, text=True)
    assert out.returncode == 1 and out.stderr.strip().splitlines() == [
        "error: kafka.group.id: set by the scoring loop itself; use the ScoringConfig field group_id instead "
        "(in /dev/stdin)"]


def test_snapshots_without_state_are_refused_by_the_parser(tmp_path):
    out = subprocess.run([sys.executable, "-m", "core", "--no-state", "--snapshot-interval", "1"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == ("Error: --snapshot-interval and --no-state exclude each other "
                                                   "(no state, no snapshots)")
    config = tmp_path / "stateless.yaml"
    config.write_text("state: false\n")
    out = subprocess.run([sys.executable, "-m", "core", "--config", str(config), "--snapshot-interval", "1"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (f"Error: --snapshot-interval with state: false in {config}: "
                                                   "no state, no snapshots")
