"""Scenario files: every shipped one parses; mistakes are one line naming the field."""

from pathlib import Path

import pytest

from bench.run.orchestrate import resolve_target
from bench.spec.scenario import Max, decode_scenario, load_scenario, pipelines_of
from core.errors import ConfigError

SCENARIOS = sorted((Path(__file__).resolve().parents[3] / "scenarios").glob("*.yaml"))


def test_the_headline_scenarios_ship():
    names = {p.stem for p in SCENARIOS}
    assert {"peak", "steady", "burst", "card-testing", "failover", "seed-vs-fraudstream"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_parse(path):
    s = load_scenario(path)
    assert s.name == path.stem
    resolve_target(s, path)


def test_peak_is_a_search_and_the_comparison_has_two_pipelines():
    root = SCENARIOS[0].parent
    assert isinstance(load_scenario(root / "peak.yaml").rate, Max)
    assert pipelines_of(load_scenario(root / "seed-vs-fraudstream.yaml")) == ["seed-baseline", "fraudstream"]


@pytest.mark.parametrize("text,message", [
    ("name: x\nrate: {profile: constant, tps: -5}", "x.yaml: Expected float > 0.0 - at $.rate.tps"),
    ("name: x\nrate: {profile: constant, tps: 5}\ndurration_s: 3", "unknown field durration_s - at $"),
    ("name: x\nrate: {profile: constant, tpz: 5}", "unknown field tpz - at $.rate"),
    ("name: x\nrate: {profile: warp, tps: 5}", "Invalid value 'warp' - at $.rate.profile"),
    ("name: x\nrate: {profile: max}\npipeline: [seed, fraudstream]", "at $.pipeline[0]"),
    ("name: x\nrate: {profile: max}\ntopology: {partitions: 2, scoring_processes: 3}",
     "at $.topology.scoring_processes"),
    ("name: x\nrate: {profile: constant, tps: 5}\nduration_s: 10\nfaults: [{at_s: 12, kill: scorer}]",
     "at $.faults[0].at_s"),
    ("name: x\nrate: [", "not valid YAML"),
    ("name: x\nrate: {profile: constant, tps: [1, 2\nduration_s: 5\n",
     "not valid YAML: did not find expected ',' or ']' (line 3, column 11) while parsing a flow sequence"),
    ("name: x\nrate: {profile: constant, tps: 5}\ntraffic: {mix: {card_testin: 1.0}}",
     "unknown fraud pattern 'card_testin' (known: high_amount, micro,"),
    ("name: x\nrate: {profile: constant, tps: 5}\ntraffic: {mix: {micro: 0}}", "at $.traffic.mix"),
    # it was taken modulo the processes: index 99 silently killed process 3
    ("name: x\nrate: {profile: constant, tps: 5}\nduration_s: 10\nfaults: [{at_s: 2, kill: scorer, index: 6}]",
     "faults[0].index (6) names no scoring process: there are 6 (0..5) - at $.faults[0].index"),
    ("name: x\nrate: {profile: constant, tps: 5}\ntarget: {nodes: 2}", "Invalid enum value 2 - at $.target.nodes"),
    ("name: x\nrate: {profile: max, confirm_steps: 7}", "Expected int <= 6 - at $.rate.confirm_steps"),
    ("name: x\nrate: {profile: max, confirm_steps: -1}", "Expected int >= 0 - at $.rate.confirm_steps"),
])
def test_mistakes_are_one_clear_line(text, message):
    with pytest.raises(ConfigError) as info:
        decode_scenario(text, "x.yaml")
    text = str(info.value)
    assert message in text and "\n" not in text


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read scenario"):
        load_scenario(tmp_path / "nope.yaml")
