"""The result of `bench run`: the schema of `result.json`, field by field, and how it is
written and read.

`bench run` builds a RunResult, writes it with write_result, and `bench report` reads it back
with read_result into the same types, so a file that is not what this bench writes is one
error naming the file and the field (`result.json: Expected int, got str - at
$.runs[0].verdict.missing`), not a KeyError half-way through a table.

    result = read_result("results/peak-20261128-101500/result.json")
    result.runs[0].headline.sustained_tps

Layout (JSON names; `?` marks a field that may be null):

    RunResult           one `bench run`
      scenario          the scenario as run (bench.spec.scenario.Scenario, overrides applied)
      machine           Machine: cores, CPU, library versions, kernel writeback settings
      runs[]            PipelineRun: one per pipeline of the scenario, in order
        headline        Headline: the figures the run is judged by
        window?         Window: a fixed-rate run's measurement window
        steps[]?        Window: a rate search's steps, every trial, in the order run
        confirmation?   Window: a search's median peak held for confirm_s
        step_downs[]    Window: holds at lower rates after that one missed (rate.confirm_steps)
        verdict         Verdict: exactly once, from the sequence numbers the sinks read
        faults[]        FaultEvent: what was killed, when
          restores[]?   Restore: how each partition of a killed scoring process came back
        per_second[]    Second: counts and latency percentiles, second by second
        scorer_memory?  ScorerMemory: the scoring service's RSS while measuring
      comparison?       Comparison: two pipelines' sustained rates and their ratio's range

Latencies are milliseconds, rates records per second, times epoch seconds unless a name says
otherwise. A percentile is null when nothing was measured.

Compatibility. Unknown fields are ignored (no forbid_unknown_fields here): a result written
by a newer bench, with figures this one does not know, still prints what this one knows. A
field that results of older benches lack has a default meaning "not measured then" (its
comment says so); every other field is required, so a truncated or foreign file is an error
naming the missing field. The scenario is the exception: it is decoded with the scenario's
own strict types, so a result whose scenario uses a knob this bench does not know is refused
with that knob's path (`- at $.scenario.traffic.x`) rather than reported as if the knob had
not been set.
"""

import os
from pathlib import Path
from typing import Literal

import msgspec

from bench.spec.scenario import Scenario, Slo
from bench.spec.yamlfile import validation_message
from core.errors import ConfigError

__all__ = ["check_out_dir", "RunResult", "PipelineRun", "Headline", "Window", "Verdict", "Detection", "PatternDetection",
           "Latency",
           "Stages", "Checks", "Counts", "BrokerGc", "BrokerWarmup", "FaultEvent", "Restore", "Second", "Machine",
           "BrokerData", "Comparison", "read_result", "write_result", "encode_result"]

# kw_only: fields in the order they appear in the file, whether they have a default or not
_RECORD = dict(frozen=True, kw_only=True)


class Latency(msgspec.Struct, **_RECORD):
    """A latency histogram summarised (bench.measure.histogram.summary); all but count null
    when it is empty."""
    count: int
    mean_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    p999_ms: float | None = msgspec.field(name="p99.9_ms")
    max_ms: float | None


class Stages(msgspec.Struct, **_RECORD):
    """End to end split at the output record's timestamp (bench.measure.sink): from the
    intended send time until the scorer produced it, and from then until a read_committed
    consumer could see it (the transaction's commit). Null in a window with no records."""
    until_scored: Latency | None = None
    scored_to_visible: Latency | None = None


class Checks(msgspec.Struct, **_RECORD):
    """The four SLO checks of a window (bench.measure.timeline.Timeline.judge)."""
    p99: bool
    p999: bool = msgspec.field(name="p99.9")
    rate: bool          # every scheduled record showed up (by the time it was judged)
    # the output kept pace during the window: the consumer lag at its end exceeds that at its
    # start by at most asked x p99 (before: the visible rate was 95 % of the asked)
    throughput: bool


class BrokerGc(msgspec.Struct, **_RECORD):
    """The local broker's GC pauses that ended in a window, all nodes (bench.broker.gclog)."""
    count: int
    p50_ms: float | None
    max_ms: float | None
    total_ms: float
    share: float        # of the window's wall time spent paused (summed over nodes)


class Counts(msgspec.Struct, **_RECORD):
    """What was sent and seen for records intended in epoch seconds [a, b) (the live progress
    line reads these once a second; a Window adds the judgement)."""
    seconds: int
    sent: int                   # records intended in the window that the generator sent
    measured: int               # of them, visible in fraud-scores (have a latency)
    sent_tps: float             # records that went out in the window's seconds, by the clock
    achieved_tps: float         # the window's own records visible, per second of the window
    e2e: Latency                # end to end of the measured records
    publish_delay: Latency      # how late the generator sent after the intended time


class Window(Counts, **_RECORD):
    """A judged span of intended send seconds [a, b): a fixed run's whole measurement, or one
    step of a rate search. Records intended in the window and not visible when it was judged
    count as at least as late as they were then (`unseen`, inside `judged_e2e`)."""
    e2e_stages: Stages | None = None   # null: before results split end to end
    e2e_spectrum: list[tuple[float, float]] = []   # (percentile, ms), min to max
    asked_tps: float
    planned: int                # records the schedule put in the window
    unseen: int                 # planned - measured
    judged_e2e: Latency         # e2e with the unseen records counted as late
    checks: Checks
    passed: bool
    cpu_cores: dict[str, float] = {}   # cores used per process group (loadgen, sink, scorer, broker)
    broker_gc: BrokerGc | None = None  # null: a remote broker, or before GC was read
    stage: Literal["ascend", "descend", "refine", "confirm", "step down"] | None = None   # a search step's kind
    trial: int | None = None           # which repetition of the search (from 0)
    lag_start: int | None = None       # records intended and not visible after the window's first second
    lag_end: int | None = None         # the same at its end (null: before the sustained rule)
    # the step started on a pipeline verified drained (false: the drain timed out and the
    # step ran on a backlog); null for steps run back to back
    drained: bool | None = None


class Headline(msgspec.Struct, **_RECORD):
    """The figures a pipeline's run is judged by: a fixed run's window; for a rate search,
    the highest confirmation hold that held (the median peak's, else a step down's), the
    median peak's hold when none held, or without confirmation the trial's peak step nearest
    the median. All null when no rate held."""
    sustained_tps: float | None     # the rate held within the SLO (null: none held / no hold held)
    achieved_tps: float | None = None
    asked_tps: float | None
    e2e: Latency | None
    e2e_stages: Stages | None = None
    publish_delay: Latency | None
    e2e_spectrum: list[tuple[float, float]] = []
    cpu_cores: dict[str, float] | None
    broker_gc: BrokerGc | None = None
    judged_e2e: Latency | None = None   # e2e with the unseen records at their age (the verdict's)
    unseen: int | None = None
    # a search: every trial's peak (null: that trial held no rate), their median, min, max
    peaks_tps: list[float | None] = []
    peak_median_tps: float | None = None
    peak_min_tps: float | None = None
    peak_max_tps: float | None = None
    # the rate lies in [low, high): the lowest peak and the highest miss above a peak over
    # the trials (high null: max_tps held); when a step down's hold gave the sustained rate,
    # that rate and the lowest hold that missed above it; for a fixed run both are the
    # sustained rate
    bracket_tps: tuple[float, float | None] | None = None
    confirmed: bool | None = None       # the median peak's own hold held (null: none ran)


class PatternDetection(msgspec.Struct, **_RECORD):
    """One fraud pattern's share of the detection (bench.measure.verdict explains precision)."""
    positives_sent: int
    true_positives: int
    recall: float
    precision: float | None     # tp / (tp + every flagged legit record)


class Detection(msgspec.Struct, omit_defaults=True, **_RECORD):
    """Flagged scores against the generator's _synthetic_label; null ratios: nothing to divide."""
    positives_sent: int
    flagged: int
    true_positives: int
    precision: float | None
    recall: float | None
    # per _synthetic_pattern (absent in results written before patterns were reported)
    false_positives: int | None = None
    by_pattern: dict[str, PatternDetection] | None = None


class Verdict(msgspec.Struct, **_RECORD):
    """Exactly once, from every sequence number read back (bench.measure.verdict)."""
    exactly_once: bool
    sent: int
    scored_unique: int          # distinct sent records seen in fraud-scores
    scored_records: int         # records read from fraud-scores, duplicates included
    missing: int
    duplicated: int
    unexpected: int             # in fraud-scores but never sent by this run
    alerts: int
    alert_duplicates: int
    alerts_not_flagged: int     # alerts whose score did not say is_fraud
    flagged_without_alert: int
    detection: Detection
    delivery_errors: int = 0    # records the generator could not deliver
    first_delivery_errors: list[str] = []
    drained: bool = True        # every sent record was visible before drain_s ran out


class Restore(msgspec.Struct, **_RECORD):
    """A partition the killed scoring process held, back in service, as the service logged it
    (bench.measure.restores). Seconds count from the kill. Null: not in the log (no restore:
    state off; no commit: none before the run ended)."""
    partition: int
    pid: int | None             # the process that took the partition over
    records: int | None         # changelog records its restore read
    cards: int | None           # cards in the restored state
    restore_s: float | None     # the restore as the service timed it (snapshots: restore + replay)
    replayed: int | None = None    # input records replayed after the snapshot (snapshots only)
    assigned_after_s: float | None = None  # kill -> the partition assigned to that process
    restored_after_s: float | None         # kill -> the restore done
    first_commit_after_s: float | None     # kill -> the partition's first committed batch


class FaultEvent(msgspec.Struct, omit_defaults=True, **_RECORD):
    """A planned kill; fields that do not apply are left out of the file."""
    t: float                    # when (epoch s)
    at_s: float | None = None   # the scenario's time for it, seconds into the measurement
    kill: Literal["scorer", "broker"]
    pid: int | None = None      # the scoring process killed
    node: int | None = None     # the broker node killed
    error: str | None = None    # why nothing was killed
    # a scorer kill: each partition the process held (empty: none); null when not read (an
    # external scorer, a seed-baseline pipeline, results from before restores were reported)
    restores: list[Restore] | None = None


class Second(msgspec.Struct, **_RECORD):
    """One second of the run: t counts from the warm-up's start; percentiles are of the
    records intended in that second."""
    t: int
    sent: int
    visible: int                # records that became visible in that second
    p50_ms: float | None
    p99_ms: float | None
    p999_ms: float | None = msgspec.field(name="p99.9_ms")
    max_ms: float | None


class BrokerWarmup(msgspec.Struct, **_RECORD):
    """The load that ran before measuring until the local broker's JIT compiler settled."""
    seconds: float
    compiler_cpu_s: float
    settled: bool               # false: stopped by the time cap (or the broker went away)


class ScorerMemory(msgspec.Struct, **_RECORD):
    """Resident memory of the scoring service (VmRSS summed over its processes), sampled every
    second from the start of measuring until the output drained. A leak shows as growth with
    the records scored; the per-card state also grows with the cards it holds."""
    start_mb: float
    peak_mb: float
    end_mb: float
    scored: int                 # records scored between the first sample and the last


class PipelineRun(msgspec.Struct, **_RECORD):
    """One pipeline's part of a run, on topics of its own."""
    pipeline: str
    run_id: str
    topics: list[str]           # transactions, scores, alerts, dead letters
    kind: Literal["fixed", "max"]
    headline: Headline
    window: Window | None       # kind fixed
    steps: list[Window] | None  # kind max
    slo: Slo
    slo_passed: bool
    verdict: Verdict
    passed: bool                # slo_passed and exactly once
    faults: list[FaultEvent]
    per_second: list[Second]
    pool_build_s: float         # generating the producers' payload pools
    first_send_epoch_s: float
    workers_restarted: int      # scoring processes killed (and restarted) by planned faults
    broker_warmup: BrokerWarmup | None = None   # null: a remote broker
    confirmation: Window | None = None  # kind max: the median peak held for confirm_s
    # kind max: holds at lower rates after the confirmation missed, in order (absent in
    # results from before step downs: none ran)
    step_downs: list[Window] = []
    scorer_memory: ScorerMemory | None = None   # null: an external scorer, or an older result


class Machine(msgspec.Struct, **_RECORD):
    """Where it ran (also in `bench drain`'s result)."""
    cores: int
    cpu_model: str
    platform: str
    python: str
    confluent_kafka: str
    librdkafka: str
    numpy: str
    loadavg_1m_at_end: float | None = None
    vm_writeback: dict[str, int] = {}   # the kernel's vm.dirty_* settings, by name


class BrokerData(msgspec.Struct, **_RECORD):
    """Where a local broker kept its logs."""
    dir: str
    in_memory: bool             # tmpfs: no kernel writeback to stall appends


class Comparison(msgspec.Struct, **_RECORD):
    """Two pipelines run on the same load: B's sustained rate over A's. The ratio of two
    search steps has no precision of its own: ratio_range is B's bracket over A's,
    [B low / A high, B high / A low] (high null: unbounded), the figure to quote."""
    pipelines: list[str]
    sustained_tps: list[float | None]
    ratio: float | None         # null when either held no rate
    ratio_range: tuple[float | None, float | None] | None = None


class RunResult(msgspec.Struct, omit_defaults=True, **_RECORD):
    """One `bench run`: the file `result.json`."""
    scenario: Scenario
    started_at: str             # UTC, ISO 8601
    bootstrap: str
    embedded_broker: bool = False   # the run used (or started) the local broker
    machine: Machine
    runs: list[PipelineRun]
    broker_data: BrokerData | None = None   # a local broker only
    comparison: Comparison | None = None    # exactly two pipelines only
    passed: bool                # every run held its SLO and was exactly once
    exactly_once: bool


def _enc_hook(obj):
    # A numpy scalar that slipped into a figure is still a number: write it as one rather
    # than lose a finished run's result to an encode error (read_result checks the type).
    item = getattr(obj, "item", None)
    if callable(item) and type(obj).__module__ == "numpy":
        return item()
    raise NotImplementedError(f"cannot write a {type(obj).__name__} in a result")


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook)
_DECODER = msgspec.json.Decoder(RunResult)


def encode_result(result: msgspec.Struct) -> bytes:
    """A result (or any of these records) as indented JSON."""
    return msgspec.json.format(_ENCODER.encode(result), indent=1)


def check_out_dir(out_dir: Path) -> None:
    """ConfigError unless out_dir exists (made now) and can be written to: a bad --out is one
    line before a run, not a traceback after it (the service log goes there while it runs)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out_dir}: cannot create it: {exc.strerror}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out_dir}: not writable")


def write_result(result: RunResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_result(result) + b"\n")
    return path


def read_result(path: str | Path) -> RunResult:
    """The result file at `path`; anything else is one ConfigError line naming the file and,
    when a field is wrong or missing, its path."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        message = validation_message(str(path), exc)
        if message.endswith(" - at $"):   # the whole document is something else
            message = message.replace(f"{path}: ", f"{path}: not a bench run result: ", 1)
        raise ConfigError(message) from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path}: not a bench run result (JSON): {exc}") from None
