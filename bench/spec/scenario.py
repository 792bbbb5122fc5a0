"""Scenario files: *what load* a benchmark run applies, decoded from YAML into frozen Structs.

A scenario says how fast, for how long, with which traffic, against which pipeline, and what
counts as a pass (the SLO). *Which cluster, tuned how* lives in a separate target file
(bench.spec.target), as in OpenMessaging Benchmark's workload vs driver split.

    scenario = load_scenario("scenarios/peak.yaml")
    scenario.rate            # Constant | Ramp | Steps | Bursts | Max (tagged by `profile:`)

Every field is checked on load: a typo or an out-of-range value is a ConfigError whose one
line names the field, e.g. `scenarios/x.yaml: Expected float > 0.0 - at $.rate.tps`.
"""

from pathlib import Path
from typing import Annotated, Literal, Union

import msgspec

from bench.spec.target import Target
from bench.spec.yamlfile import decode_yaml, read_yaml, validation_message
from core.errors import ConfigError

__all__ = [
    "Scenario", "Constant", "Ramp", "Steps", "Step", "Bursts", "Max", "Topology", "Batching",
    "Traffic", "Slo", "Fault", "Pipeline", "load_scenario", "decode_scenario", "pipelines_of",
]

_STRUCT = dict(frozen=True, forbid_unknown_fields=True)

Tps = Annotated[float, msgspec.Meta(gt=0, le=5_000_000)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=86_400)]
Pipeline = Literal["fraudstream", "seed-baseline"]


class Constant(msgspec.Struct, tag_field="profile", tag="constant", **_STRUCT):
    """The same rate for the whole measurement."""
    tps: Tps


class Ramp(msgspec.Struct, tag_field="profile", tag="ramp", **_STRUCT):
    """A linear change from start_tps to end_tps over the measurement."""
    start_tps: Tps
    end_tps: Tps


class Step(msgspec.Struct, **_STRUCT):
    tps: Tps
    duration_s: Seconds


class Steps(msgspec.Struct, tag_field="profile", tag="steps", **_STRUCT):
    """Fixed-rate steps, in order, repeated until the measurement ends."""
    steps: Annotated[list[Step], msgspec.Meta(min_length=1, max_length=1000)]


class Bursts(msgspec.Struct, tag_field="profile", tag="bursts", **_STRUCT):
    """base_tps, with burst_tps for burst_s at the start of every every_s seconds."""
    base_tps: Tps
    burst_tps: Tps
    burst_s: Seconds
    every_s: Seconds


class Max(msgspec.Struct, tag_field="profile", tag="max", **_STRUCT):
    """Search for the highest rate that holds the SLO.

    Fixed-rate steps of step_s seconds, each `factor` times the last, run back to back from
    start_tps until a step misses the SLO (or max_tps); if the very first one misses, steps
    down by `factor` (up to 4 times) instead. Then `refine` bisection steps between the last
    pass and the first miss, each after the pipeline has drained. The first settle_s seconds
    of every step are not judged (the rate just changed).

    The search runs `repeat` times (each after a drain), and the median of the peaks is then
    held for confirm_s seconds on a drained pipeline (0: no confirmation). One short search
    is one sample of a noisy machine: the same command gave 10,166 to 37,969 tx/s on one
    day. Three is the fewest trials whose median one outlier either way cannot move; the
    confirmation shows the median peak held for a minute, not for one 6 s step.

    A missed confirmation is followed by up to confirm_steps more holds at lower rates
    (bench.run.phases.next_hold): a minute meets broker GC pauses that 6 s steps mostly
    escape, so the median peak can miss by a few ms of p99 while a rate a little lower holds.
    The sustained rate is the highest rate whose hold held.
    """
    start_tps: Tps = 5_000.0
    max_tps: Tps = 400_000.0
    factor: Annotated[float, msgspec.Meta(ge=1.05, le=4.0)] = 1.5
    step_s: Annotated[float, msgspec.Meta(ge=2, le=600)] = 8.0
    settle_s: Annotated[float, msgspec.Meta(ge=0, le=60)] = 2.0
    refine: Annotated[int, msgspec.Meta(ge=0, le=6)] = 2
    repeat: Annotated[int, msgspec.Meta(ge=1, le=50)] = 3
    confirm_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 60.0
    confirm_steps: Annotated[int, msgspec.Meta(ge=0, le=6)] = 2


Rate = Union[Constant, Ramp, Steps, Bursts, Max]


class Topology(msgspec.Struct, **_STRUCT):
    """How the pipeline is laid out: input partitions and the processes on each side."""
    partitions: Annotated[int, msgspec.Meta(ge=1, le=256)] = 6
    scoring_processes: Annotated[int, msgspec.Meta(ge=1, le=256)] = 6
    producers: Annotated[int, msgspec.Meta(ge=1, le=32)] = 1
    sinks: Annotated[int, msgspec.Meta(ge=1, le=16)] = 1
    # the generator and sink each run in a session of their own (under Linux autogroup,
    # CPU is shared fairly between sessions) with this nice value: on a small shared machine
    # they must not be starved, or the harness is what gets measured (negative needs root /
    # CAP_SYS_NICE; without it the value is ignored)
    harness_nice: Annotated[int, msgspec.Meta(ge=-20, le=19)] = -5


class Batching(msgspec.Struct, **_STRUCT):
    """Micro-batch limits handed to the scoring service (None: the service's default)."""
    max_records: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    max_wait_ms: Annotated[float, msgspec.Meta(ge=0, le=60_000)] | None = None


class Traffic(msgspec.Struct, **_STRUCT):
    """The transactions: generated by bench.load.synth with this seed, fraud rate and pattern mix."""
    seed: Annotated[int, msgspec.Meta(ge=0)] = 42
    fraud_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.002
    # pattern name -> weight, passed to bench.load.synth.generate(mix=...)
    mix: dict[str, Annotated[float, msgspec.Meta(ge=0)]] | None = None
    # cards per producer: each producer has cards of its own, so every card's transactions
    # come from one producer and reach their partition in time order
    n_cards: Annotated[int, msgspec.Meta(ge=1, le=100_000_000)] = 10_000
    card_skew: Annotated[float, msgspec.Meta(ge=0, le=10)] = 0.0
    # pad each JSON value to about this many bytes with a `_pad` field (None: as generated)
    message_bytes: Annotated[int, msgspec.Meta(ge=64, le=1_000_000)] | None = None
    # distinct payloads generated up front per producer (one day of event time) and cycled
    # through, each lap a day later
    pool: Annotated[int, msgspec.Meta(ge=1_000, le=10_000_000)] = 200_000


class Slo(msgspec.Struct, **_STRUCT):
    """Pass/fail: end-to-end percentiles and the achieved share of the asked rate."""
    p99_ms: Annotated[float, msgspec.Meta(gt=0)] = 50.0
    p999_ms: Annotated[float, msgspec.Meta(gt=0)] = 100.0
    min_rate_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.95


class Fault(msgspec.Struct, **_STRUCT):
    """Kill something at_s seconds into the measurement (SIGKILL, no warning)."""
    at_s: Annotated[float, msgspec.Meta(ge=0)]
    kill: Literal["scorer", "broker"]
    # which scoring process / broker node (None: a seeded random one)
    index: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Scenario(msgspec.Struct, **_STRUCT):
    """One benchmark scenario. See scenarios/*.yaml for commented examples."""
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    rate: Rate
    description: str = ""
    duration_s: Seconds = 30.0
    warmup_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 5.0
    # the longest wait, after the last send, for the outputs to become visible
    drain_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    # one pipeline, or several run one after the other on the same load (a comparison)
    pipeline: Union[Pipeline, Annotated[list[Pipeline], msgspec.Meta(min_length=1)]] = "fraudstream"
    topology: Topology = Topology()
    batch: Batching = Batching()
    # fraudstream's per-card velocity state, with the default (stateful) model; false: the
    # service runs with --no-state and the stateless model (models/fraud-model-stateless.*)
    state: bool = True
    # seconds between the service's card-state snapshots per partition (its --snapshot-interval;
    # None: the service's default, 5 s): fewer changelog writes against a longer replay on restore
    snapshot_interval_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] | None = None
    traffic: Traffic = Traffic()
    slo: Slo = Slo()
    faults: list[Fault] = []
    # a target file (relative to the scenario) or an inline target; None: targets/local.yaml
    target: Union[str, Target, None] = None


def pipelines_of(scenario: Scenario) -> list[str]:
    """The pipelines a scenario runs, in order."""
    p = scenario.pipeline
    return [p] if isinstance(p, str) else list(p)


def decode_scenario(text: str | bytes, source: str = "<scenario>") -> Scenario:
    """Decode and validate scenario YAML; errors are one line naming the source and field."""
    scenario = decode_yaml(text, Scenario, source)
    _check(scenario, source)
    return scenario


def with_overrides(scenario: Scenario, source: str, **changes) -> Scenario:
    """`scenario` with fields replaced, validated again like a file (one line on error)."""
    replaced = msgspec.structs.replace(scenario, **changes)
    try:
        replaced = msgspec.convert(msgspec.to_builtins(replaced), Scenario)
    except msgspec.ValidationError as exc:
        raise ConfigError(validation_message(source, exc)) from None
    _check(replaced, source)
    return replaced


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file; see decode_scenario."""
    scenario = read_yaml(path, Scenario, "scenario")
    _check(scenario, str(path))
    return scenario


def _check(s: Scenario, source: str) -> None:
    """Cross-field rules a type cannot express."""
    if s.topology.scoring_processes > s.topology.partitions:
        raise ConfigError(
            f"{source}: topology.scoring_processes ({s.topology.scoring_processes}) exceeds "
            f"topology.partitions ({s.topology.partitions}): the extra processes would idle - "
            "at $.topology.scoring_processes")
    if s.snapshot_interval_s is not None and not s.state:
        raise ConfigError(f"{source}: snapshot_interval_s needs state: there is no card state to "
                          "snapshot with state off - at $.snapshot_interval_s")
    if isinstance(s.rate, Bursts) and s.rate.burst_s >= s.rate.every_s:
        raise ConfigError(f"{source}: rate.burst_s must be shorter than rate.every_s - at $.rate.burst_s")
    if isinstance(s.rate, Max) and s.rate.start_tps > s.rate.max_tps:
        raise ConfigError(f"{source}: rate.start_tps exceeds rate.max_tps - at $.rate.start_tps")
    if s.traffic.mix is not None:
        from bench.load.synth import FRAUD_PATTERNS

        unknown = sorted(set(s.traffic.mix) - set(FRAUD_PATTERNS))
        if unknown:
            raise ConfigError(f"{source}: unknown fraud pattern {unknown[0]!r} (known: "
                              f"{', '.join(FRAUD_PATTERNS)}) - at $.traffic.mix.{unknown[0]}")
        if not any(s.traffic.mix.values()):
            raise ConfigError(f"{source}: traffic.mix needs a weight above 0 - at $.traffic.mix")
    for i, fault in enumerate(s.faults):
        if fault.kill == "scorer" and fault.index is not None and fault.index >= s.topology.scoring_processes:
            raise ConfigError(
                f"{source}: faults[{i}].index ({fault.index}) names no scoring process: there are "
                f"{s.topology.scoring_processes} (0..{s.topology.scoring_processes - 1}) - at $.faults[{i}].index")
        if not isinstance(s.rate, Max) and fault.at_s >= s.duration_s:
            raise ConfigError(
                f"{source}: faults[{i}].at_s ({fault.at_s}) is not inside duration_s "
                f"({s.duration_s}) - at $.faults[{i}].at_s")
