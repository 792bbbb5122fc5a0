"""The result file's schema (bench.report.result): a saved result reads into the types and
writes back the same JSON, a result prints the same after a write and a read, and a file with
a wrong or missing field is one error line naming the file and the field's path."""

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from rich.console import Console

from bench.report.result import RunResult, encode_result, read_result, write_result
from bench.report.text import print_result
from core.errors import ConfigError

RESULT = Path(__file__).parent / "data" / "peak-no-rate-held.json"
BENCH = [sys.executable, "-m", "bench.cli"]


def _printed(result: RunResult) -> str:
    console = Console(record=True, width=140, highlight=False)
    print_result(result, console)
    return console.export_text()


def _raw() -> dict:
    return json.loads(RESULT.read_text())


def _save(tmp_path: Path, raw: dict, name: str = "result.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(raw))
    return path


def test_a_saved_result_reads_into_the_types_and_writes_back_the_same_json():
    result = read_result(RESULT)
    assert result.runs[0].steps[0].judged_e2e.p999_ms == 128.127       # "p99.9_ms" in the file
    assert result.runs[0].steps[0].checks.p999 is False                 # "p99.9"
    written, raw = json.loads(encode_result(result)), _raw()
    # written before the scenario had `state` and `snapshot_interval_s`: it reads as state on
    # with the service's snapshot interval, the defaults then as now
    assert written["scenario"].pop("state") is True and "state" not in raw["scenario"]
    assert written["scenario"].pop("snapshot_interval_s") is None
    assert "snapshot_interval_s" not in raw["scenario"]
    # and before the holds at lower rates after a missed confirmation: none ran, the
    # scenario's number of them the default
    assert written["scenario"]["rate"].pop("confirm_steps") == 2
    assert "confirm_steps" not in raw["scenario"]["rate"]
    assert written["runs"][0].pop("step_downs") == [] and "step_downs" not in raw["runs"][0]
    # and before the scoring service's memory was reported: not measured
    assert written["runs"][0].pop("scorer_memory") is None and "scorer_memory" not in raw["runs"][0]
    assert written == raw


def test_a_numpy_number_in_a_figure_is_written_as_a_number():
    import numpy as np

    from bench.report.result import Latency

    e2e = Latency(count=np.int64(3), mean_ms=np.float32(1.5), p50_ms=None, p90_ms=None, p99_ms=None,
                  p999_ms=None, max_ms=np.float64(2.0))
    assert json.loads(encode_result(e2e)) == {"count": 3, "mean_ms": 1.5, "p50_ms": None, "p90_ms": None,
                                              "p99_ms": None, "p99.9_ms": None, "max_ms": 2.0}


def test_write_read_print_round_trip(tmp_path):
    result = read_result(RESULT)
    path = write_result(result, tmp_path / "out" / "result.json")
    again = read_result(path)
    assert again == result
    assert _printed(again) == _printed(result)
    assert "no rate tried held the SLO" in _printed(again)


@pytest.mark.parametrize("change, where, why", [
    (lambda r: r["runs"][0]["verdict"].__setitem__("missing", "none"),
     "$.runs[0].verdict.missing", "Expected int, got str"),
    (lambda r: r["runs"][0]["steps"][2]["judged_e2e"].pop("p99.9_ms"),
     "$.runs[0].steps[2].judged_e2e", "Object missing required field p99.9_ms"),
    (lambda r: r["machine"].__setitem__("cores", None), "$.machine.cores", "Expected int, got null"),
    (lambda r: r["runs"][0].__setitem__("kind", "fastest"), "$.runs[0].kind",
     "Invalid enum value 'fastest'"),
    (lambda r: r["scenario"]["slo"].__setitem__("p99_ms", -1), "$.scenario.slo.p99_ms",
     "Expected float > 0.0"),
])
def test_a_wrong_or_missing_field_is_named_with_its_path(tmp_path, change, where, why):
    raw = _raw()
    change(raw)
    path = _save(tmp_path, raw)
    with pytest.raises(ConfigError) as err:
        read_result(path)
    assert str(err.value) == f"{path}: {why} - at {where}"


def test_fields_a_newer_bench_adds_are_ignored_and_older_results_lack_some():
    raw = _raw()
    raw["runs"][0]["verdict"]["new_figure"] = 1.5     # written by a newer bench
    raw["future"] = {"anything": [1, 2]}
    del raw["runs"][0]["broker_warmup"]               # written before these were measured
    del raw["machine"]["loadavg_1m_at_end"]
    del raw["broker_data"]
    result = msgspec.json.decode(json.dumps(raw), type=RunResult)
    assert result.runs[0].broker_warmup is None and result.broker_data is None
    assert result.machine.loadavg_1m_at_end is None
    text = _printed(result)
    assert "load average" not in text and "broker data in memory" not in text
    assert "exactly-once: EXACTLY-ONCE" in text


def test_a_scenario_knob_this_bench_does_not_know_is_refused(tmp_path):
    """The scenario keeps its own strict types: a run with a setting this bench cannot read
    is not reported as if that setting had not been there."""
    raw = _raw()
    raw["scenario"]["traffic"]["burstiness"] = 3
    path = _save(tmp_path, raw)
    with pytest.raises(ConfigError, match=r"Object contains unknown field burstiness - at \$.scenario.traffic$"):
        read_result(path)


def test_bench_report_on_a_bad_field_prints_one_error_line_and_exits_1(tmp_path):
    raw = _raw()
    raw["runs"][0]["verdict"]["missing"] = "none"
    path = _save(tmp_path, raw)
    good = _save(tmp_path, _raw(), "good.json")
    for args in ([str(path)], [str(good), "--compare", str(path)]):
        proc = subprocess.run(BENCH + ["report", *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr == f"error: {path}: Expected int, got str - at $.runs[0].verdict.missing\n"
        assert "Traceback" not in proc.stderr


def test_bench_report_prints_a_saved_result_and_a_comparison(tmp_path):
    path = _save(tmp_path, _raw())
    proc = subprocess.run(BENCH + ["report", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "no rate tried held the SLO: the lowest, 988/s, had p99 63.4 ms" in proc.stdout
    proc = subprocess.run(BENCH + ["report", str(path), "--compare", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "scoring processes" in proc.stdout and "exactly-once" in proc.stdout


def test_per_pattern_detection_round_trips():
    """Per-pattern figures are written and read back; a result without them stays without."""
    import msgspec

    from bench.report.result import Detection, PatternDetection

    d = Detection(positives_sent=6, flagged=5, true_positives=4, precision=0.8, recall=4 / 6,
                  false_positives=1,
                  by_pattern={"micro": PatternDetection(positives_sent=2, true_positives=1,
                                                        recall=0.5, precision=0.5)})
    assert msgspec.json.decode(msgspec.json.encode(d), type=Detection) == d
    plain = Detection(positives_sent=1, flagged=0, true_positives=0, precision=None, recall=0.0)
    assert "by_pattern" not in msgspec.json.decode(msgspec.json.encode(plain))
