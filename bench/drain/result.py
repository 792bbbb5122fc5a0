"""The result of `bench drain`: the schema of its `result.json`, written with the type.

    DrainResult
      settings          DrainSettings: what the service was started with
      verdict?          DrainVerdict: the outputs read back read_committed (absent: --no-verify)
      machine           bench.report.result.Machine, as in a `bench run` result

Rates are records per second, latencies milliseconds. As in bench.report.result, unknown
fields are ignored when read, so a newer file still reads.
"""

import msgspec

from bench.report.result import Machine

__all__ = ["DrainResult", "DrainSettings", "DrainVerdict", "STEADY_POLLS"]

_RECORD = dict(frozen=True, kw_only=True)
# Polls the 10-90 % window must span for a steady rate to count as stable: the window's two
# ends are each placed to within one poll interval, an error of at most 2 / polls (5 % at 40).
STEADY_POLLS = 40


class DrainSettings(msgspec.Struct, **_RECORD):
    """The service's batch limits and snapshot interval (null: its defaults), whether it ran
    with per-card state, and -X librdkafka settings."""
    batch_max_records: int | None
    batch_max_wait_ms: int | None
    kafka: dict[str, str]
    state: bool = True                          # results before this field ran with state
    snapshot_interval_s: float | None = None


class DrainVerdict(msgspec.Struct, **_RECORD):
    """Every input sequence number against what fraud-scores and fraud-alerts hold."""
    scored: int
    missing: int
    duplicated: int
    unexpected: int             # records without a sequence number of this input
    alerts: int
    alerts_mismatched: int      # inputs whose alert count is not their flag (0 or 1)
    dead_letters: int

    @property
    def exactly_once(self) -> bool:
        """Every input once in fraud-scores, alerts exactly the flagged, and nothing in the
        dead-letter topic: the input is all valid, so a dead letter is a record the service
        failed to score (and its verdict must say so, not only count it)."""
        return not (self.missing or self.duplicated or self.unexpected or self.alerts_mismatched
                    or self.dead_letters)


class DrainResult(msgspec.Struct, omit_defaults=True, **_RECORD):
    """One `bench drain`."""
    records: int
    partitions: int
    workers: int
    settings: DrainSettings
    steady_tps: int | None      # between 10 % and 90 % of the input; null: too fast to time
    overall_tps: int | None     # from just before the first commit to the end
    timed_polls: int            # polls from the first commit to the end: with few, rates are rough
    # polls inside the 10-90 % window: each end is known to within one poll (0.1 s apart),
    # so with STEADY_POLLS or more the steady rate is within ~5 % (null: before this count)
    window_polls: int | None = None
    first_commit_after_s: float
    commit_p50_ms: float
    commit_p99_ms: float
    transactions: int
    mean_batch: int             # records per transaction
    cpu_cores: dict[str, float]         # per process group: scorers, broker (a local one only)
    cpu_us_per_tx: dict[str, float]
    verdict: DrainVerdict | None = None
    machine: Machine | None = None
