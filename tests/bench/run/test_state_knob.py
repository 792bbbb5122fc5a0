"""A scenario's `state` (and `bench run --no-state`) reach the scoring service's command line:
state off is --no-state with the model that needs no state, as the service requires."""

import pytest

from bench.run.pipeline import command_for
from bench.spec.scenario import decode_scenario
from core.errors import ConfigError
from core.model import load_meta
from core.velocity import VELOCITY_FEATURES

ARGS = dict(bootstrap="b:9092", namespace="ns", workers=2, group="g")


def test_state_off_runs_the_service_without_state_and_with_the_stateless_model():
    on = command_for("fraudstream", **ARGS)
    off = command_for("fraudstream", **ARGS, state=False)
    assert "--no-state" not in on and "--model" not in on
    assert off[:len(on)] == on and off[len(on)] == "--no-state" and off[len(on) + 1] == "--model"
    meta, _ = load_meta(off[len(on) + 2])
    assert not set(VELOCITY_FEATURES) & set(meta.feature_names)
    # the seed baseline has no state to turn off (it always runs the stateless model)
    assert command_for("seed-baseline", **ARGS, state=False) == command_for("seed-baseline", **ARGS)


def test_scenario_state_defaults_on_and_is_checked():
    base = "name: s\nrate: {profile: constant, tps: 10}\n"
    assert decode_scenario(base).state is True
    assert decode_scenario(base + "state: false\n").state is False
    with pytest.raises(ConfigError, match=r"^<scenario>: Expected bool, got str - at \$.state$"):
        decode_scenario(base + "state: off-ish\n")


def test_a_snapshot_interval_reaches_the_service_only_with_state():
    on = command_for("fraudstream", **ARGS)
    every = command_for("fraudstream", **ARGS, snapshot_interval_s=0)
    assert every == on + ["--snapshot-interval", "0.0"]
    assert command_for("fraudstream", **ARGS, snapshot_interval_s=2.5)[-2:] == ["--snapshot-interval", "2.5"]
    # state off has no snapshots; the seed baseline has no such flag
    assert "--snapshot-interval" not in command_for("fraudstream", **ARGS, state=False, snapshot_interval_s=1)
    assert command_for("seed-baseline", **ARGS, snapshot_interval_s=1) == command_for("seed-baseline", **ARGS)


def test_the_service_takes_the_interval_from_that_command_line(monkeypatch):
    from click.testing import CliRunner

    import core.service
    from core.cli import score

    seen = {}

    def build_config(path, **fields):
        seen.update(fields)
        raise SystemExit(0)   # stop before anything connects

    monkeypatch.setattr(core.service, "build_config", build_config)
    argv = command_for("fraudstream", **ARGS, snapshot_interval_s=0.25)
    assert argv[1:3] == ["-m", "core"]
    result = CliRunner().invoke(score, argv[3:], obj={})
    assert result.exit_code == 0, result.output
    assert seen["state_snapshot_s"] == 0.25 and seen["state"] is None


def test_scenario_snapshot_interval_is_checked():
    base = "name: s\nrate: {profile: constant, tps: 10}\n"
    assert decode_scenario(base).snapshot_interval_s is None
    assert decode_scenario(base + "snapshot_interval_s: 0.5\n").snapshot_interval_s == 0.5
    with pytest.raises(ConfigError, match=r"^<scenario>: Expected float >= 0.0 - at \$.snapshot_interval_s$"):
        decode_scenario(base + "snapshot_interval_s: -1\n")
    with pytest.raises(ConfigError, match=r"snapshot_interval_s needs state.*at \$.snapshot_interval_s$"):
        decode_scenario(base + "state: false\nsnapshot_interval_s: 1\n")
