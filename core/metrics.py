"""Counters of the scoring loop: Prometheus metrics, an HdrHistogram of commit latency, and
the stats line.

Multi-process design: each scoring process records into prometheus-client's multiprocess
files (the supervisor sets PROMETHEUS_MULTIPROC_DIR before spawning children); the supervisor
alone serves /metrics and prints the aggregate stats line by reading those files. Counters of a
SIGKILLed process stay in its file, so totals never go backwards; the lag gauge sums live
processes only. An embedded ScoringConsumer records into the default registry of its process.
"""

from __future__ import annotations

import glob
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.statemetrics import state_summary

__all__ = ["LoopMetrics", "StatsSnapshot", "aggregate", "worker_conditions", "workers_registry", "format_stats",
           "MULTIPROC_ENV", "bucket_quantile", "consumer_lag", "UNFETCHED_WATERMARKS_S", "PAUSED_KINDS"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Commit latency buckets (seconds): a transaction commit is a few ms on a healthy broker.
_COMMIT_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
                   0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, float("inf"))
# A multiprocess metrics file starts with an 8-byte header (bytes used, padding).
_MIN_FILE_BYTES = 8
_BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000, float("inf"))


@dataclass(frozen=True)
class StatsSnapshot:
    """Totals since start (or the delta between two snapshots)."""

    processed: int = 0
    alerts: int = 0
    deadletters: int = 0
    batches: int = 0
    aborts: int = 0
    lag: int = 0
    commit_p50_ms: float = 0.0
    commit_p99_ms: float = 0.0
    state: str = ""   # the per-card state's figures, already formatted (core.statemetrics)
    kafka_unreachable: int = 0   # loops that find no broker answering now (core.reach)

    @property
    def mean_batch(self) -> float:
        return (self.processed + self.deadletters) / self.batches if self.batches else 0.0


class LoopMetrics:
    """Per-process metrics of the scoring loop. One shared instance per process."""

    _shared: "LoopMetrics | None" = None
    _lock = threading.Lock()

    def __init__(self, registry: CollectorRegistry | None = None):
        kw = {"registry": registry} if registry is not None else {}
        self.processed = Counter("fraudstream_scored", "Valid transactions scored and committed", **kw)
        self.alerts = Counter("fraudstream_alerts", "Alerts committed to the alerts topic", **kw)
        self.deadletters = Counter("fraudstream_deadletters", "Bad inputs committed to the dead-letter topic", **kw)
        self.batches = Counter("fraudstream_transactions", "Kafka transactions committed", **kw)
        self.aborts = Counter("fraudstream_aborts", "Kafka transactions aborted and retried", **kw)
        self.commit_seconds = Histogram("fraudstream_commit_seconds",
                                        "Offsets + commit of one transaction", buckets=_COMMIT_BUCKETS, **kw)
        self.batch_records = Histogram("fraudstream_batch_records", "Input records per transaction",
                                       buckets=_BATCH_BUCKETS, **kw)
        self.lag = Gauge("fraudstream_lag", "Input records not yet consumed (assigned partitions)",
                         multiprocess_mode="livesum", **kw)
        self.unreachable = Gauge("fraudstream_kafka_unreachable",
                                 "Scoring loops that find no Kafka broker answering now (core.reach)",
                                 multiprocess_mode="livesum", **kw)
        self.unreachable.set(0)
        # Exact percentiles for the stats line and the final summary: 1 µs .. 60 s, 3 digits.
        self.commit_hdr = HdrHistogram(1, 60_000_000, 3)
        self._totals = [0, 0, 0, 0, 0]
        self._lag_value = 0
        self._unreachable = 0

    @classmethod
    def shared(cls) -> "LoopMetrics":
        """The process-wide instance (created on first use, registered in the default registry)."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def record_batch(self, records: int, scored: int, alerts: int, dead: int, commit_s: float) -> None:
        self.processed.inc(scored)
        if alerts:
            self.alerts.inc(alerts)
        if dead:
            self.deadletters.inc(dead)
        self.batches.inc()
        self.commit_seconds.observe(commit_s)
        self.batch_records.observe(records)
        self.commit_hdr.record_value(max(1, int(commit_s * 1e6)))
        t = self._totals
        t[0] += scored
        t[1] += alerts
        t[2] += dead
        t[3] += 1

    def record_abort(self) -> None:
        self.aborts.inc()
        self._totals[4] += 1

    def set_lag(self, lag: int) -> None:
        self.lag.set(lag)
        self._lag_value = lag

    def set_unreachable(self, down: bool) -> None:
        """One loop of this process lost (True) or found again (False) its brokers (core.reach);
        counted, since embedded loops of one process share these metrics."""
        self._unreachable += 1 if down else -1
        self.unreachable.set(self._unreachable)

    def snapshot(self) -> StatsSnapshot:
        """This process's totals with exact commit-latency percentiles."""
        p, a, d, b, ab = self._totals
        h = self.commit_hdr
        return StatsSnapshot(p, a, d, b, ab, self._lag_value,
                             h.get_value_at_percentile(50) / 1000, h.get_value_at_percentile(99) / 1000,
                             kafka_unreachable=self._unreachable)


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Quantile from cumulative (upper bound, count) pairs, linear inside a bucket."""
    if not buckets or buckets[-1][1] <= 0:
        return 0.0
    target = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, cum in buckets:
        if cum >= target:
            if upper == float("inf"):
                return lower
            share = (target - below) / (cum - below) if cum > below else 1.0
            return lower + (upper - lower) * share
        lower, below = upper, cum
    return lower


class _WorkerFilesCollector:
    """prometheus-client's multiprocess merge over the files that hold data.

    A worker SIGKILLed (or still starting) between creating its metrics file and sizing it
    leaves an empty file; the stock collector fails on it, which would take the stats line and
    /metrics (and so the supervisor) down with one unlucky kill.
    """

    def __init__(self, path: str):
        self.path = path

    def collect(self):
        from prometheus_client.multiprocess import MultiProcessCollector

        files = []
        for path in glob.glob(os.path.join(self.path, "*.db")):
            try:
                if os.path.getsize(path) >= _MIN_FILE_BYTES:
                    files.append(path)
            except OSError:
                pass  # removed since the glob
        return MultiProcessCollector.merge(files, accumulate=True)


# livesum gauges: one labelled sample per live process, summed here
_LIVE_GAUGES = ("fraudstream_lag", "fraudstream_kafka_unreachable")


def aggregate(directory: str | None = None) -> StatsSnapshot:
    """Totals over every process that wrote to the multiprocess directory."""
    registry = workers_registry(directory or os.environ[MULTIPROC_ENV])
    values: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "fraudstream_commit_seconds_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
            elif not sample.labels or family.name in _LIVE_GAUGES:
                values[sample.name] = values.get(sample.name, 0.0) + sample.value
    buckets.sort()
    return StatsSnapshot(
        processed=int(values.get("fraudstream_scored_total", 0)),
        alerts=int(values.get("fraudstream_alerts_total", 0)),
        deadletters=int(values.get("fraudstream_deadletters_total", 0)),
        batches=int(values.get("fraudstream_transactions_total", 0)),
        aborts=int(values.get("fraudstream_aborts_total", 0)),
        lag=int(values.get("fraudstream_lag", 0)),
        commit_p50_ms=bucket_quantile(buckets, 0.50) * 1000,
        commit_p99_ms=bucket_quantile(buckets, 0.99) * 1000,
        state=state_summary(values),
        kafka_unreachable=int(values.get("fraudstream_kafka_unreachable", 0)),
    )


_PAUSED = {"fraudstream_state_held_partitions": "card_state_held",
           "fraudstream_offset_reset_paused_partitions": "offset_reset_refused"}
PAUSED_KINDS = tuple(_PAUSED.values())   # why a partition is paused, as /healthz names it


def worker_conditions(directory: str) -> tuple[dict[str, int], int]:
    """What /healthz reports of the live workers now, from one read of their files: the input
    partitions they hold paused, by why, and how many find no Kafka broker answering."""
    paused, unreachable = dict.fromkeys(PAUSED_KINDS, 0), 0
    for family in workers_registry(directory).collect():
        for sample in family.samples:
            if sample.name in _PAUSED:
                paused[_PAUSED[sample.name]] += int(sample.value)
            elif sample.name == "fraudstream_kafka_unreachable":
                unreachable += int(sample.value)
    return paused, unreachable


def workers_registry(multiprocess_dir: str) -> CollectorRegistry:
    """A registry of the counters every process wrote to `multiprocess_dir` (what /metrics serves)."""
    registry = CollectorRegistry()
    registry.register(_WorkerFilesCollector(multiprocess_dir))
    return registry


def format_stats(now: StatsSnapshot, before: StatsSnapshot, elapsed_s: float, who: str = "") -> str:
    """One stats line like the seed's, with rates over the last interval."""
    d_proc = now.processed - before.processed
    d_batches = now.batches - before.batches
    d_records = d_proc + now.deadletters - before.deadletters
    rate = f" ({d_proc / elapsed_s:,.0f}/s)" if elapsed_s > 0 else ""
    prefix = f"{who}: " if who else ""
    return (f"{prefix}processed={now.processed:,}{rate} alerts={now.alerts:,} "
            f"dead_letters={now.deadletters:,} batch={d_records / d_batches if d_batches else 0:,.0f} "
            f"commit_p50={now.commit_p50_ms:.1f}ms commit_p99={now.commit_p99_ms:.1f}ms "
            f"aborts={now.aborts} lag={now.lag:,}{now.state}{_unreachable_text(now.kafka_unreachable)}")


def _unreachable_text(loops: int) -> str:
    return f" | Kafka unreachable from {loops:,} worker(s)" if loops else ""


class Ticker:
    """True every `interval_s` seconds (never when interval is 0)."""

    def __init__(self, interval_s: float):
        self.interval = interval_s
        self.last = time.monotonic()

    def due(self) -> float:
        """Seconds since the last tick when a tick is due, else 0."""
        if not self.interval:
            return 0.0
        now = time.monotonic()
        elapsed = now - self.last
        if elapsed >= self.interval:
            self.last = now
            return elapsed
        return 0.0


# How long the watermarks asked for a partition the client does not fetch (paused) are used
# before they are asked again: its lag follows new input within this, at one request per
# paused partition per period.
UNFETCHED_WATERMARKS_S = 10.0


def consumer_lag(consumer: Any, committed: dict[tuple[str, int], int] | None = None,
                 highs: dict[tuple[str, int], tuple[float, int, int]] | None = None,
                 now: float | None = None) -> int | None:
    """Records the broker holds for the consumer's assigned partitions past its positions (from
    the cached high watermarks), or None when the consumer cannot say now.

    A partition that has delivered nothing since it was assigned has no position yet: its lag
    counts from the group's committed offset, asked once and kept in `committed` (clear it at
    each assignment); from its first offset it counted every record the topic retains, so an
    idle service showed its whole history as lag after each restart. A partition paused before
    its first fetch (refused by offset_reset=refuse) has no cached watermarks either: they are
    asked and kept in `highs` (asked at, low, high) for UNFETCHED_WATERMARKS_S (clear it at each
    assignment), or it would count 0; `now`: time.monotonic() unless given."""
    from confluent_kafka import KafkaException, TopicPartition

    try:
        positions = consumer.position(consumer.assignment())
        unknown = [tp for tp in positions if tp.offset < 0]
        if committed is not None and any((tp.topic, tp.partition) not in committed for tp in unknown):
            asked = [TopicPartition(tp.topic, tp.partition) for tp in unknown]
            for tp in consumer.committed(asked, timeout=5.0):
                committed[(tp.topic, tp.partition)] = tp.offset
        total = 0
        for tp in positions:
            low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high < 0 and highs is not None:
                key = (tp.topic, tp.partition)
                now = time.monotonic() if now is None else now
                if key not in highs or now - highs[key][0] >= UNFETCHED_WATERMARKS_S:
                    highs[key] = (now, *consumer.get_watermark_offsets(TopicPartition(*key), timeout=5.0))
                _, low, high = highs[key]
            start = tp.offset if tp.offset >= 0 else (committed or {}).get((tp.topic, tp.partition), -1)
            if high >= 0:
                total += max(0, high - (start if start >= 0 else low))
        return total
    except KafkaException:
        return None   # lag is informative only; the next refresh tries again
