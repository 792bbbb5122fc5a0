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
