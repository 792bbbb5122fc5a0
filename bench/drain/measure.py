"""`bench drain`: throughput of the scoring service alone, draining a pre-loaded input topic.

No load generator or latency sink competes for the CPU: the input is written first, then the
service (`python -m core`, as a user starts it) is timed until its committed offsets reach the
end of the input. The steady rate is taken between 10 % and 90 % of the input, so start-up
(model load, JIT, group join) and the last partial batches do not count; with polls 0.1 s
apart it should span STEADY_POLLS (40) of them, which the default 1.5M records do up to
~300,000 tx/s. Afterwards the outputs
are read back read_committed and checked: every input sequence number exactly once in
fraud-scores, alerts exactly the flagged scores, nothing in the dead-letter topic.
"""

from __future__ import annotations

import socket
import struct
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.measure import procs
from bench.load.header import HEADER, HEADER_DTYPE, pack_header
from bench.drain.result import DrainResult, DrainSettings, DrainVerdict
from bench.run.pipeline import PipelineProcess, command_for
from bench.measure.sink import says_fraud
from bench.errors import PipelineUnderTestError, TopicError
from core.metrics import bucket_quantile
from core.topics import TopicNames

__all__ = ["DrainOptions", "preload", "drain", "read_outputs"]

_SEQ_AT = HEADER_DTYPE.fields["seq"][1]
_CHUNK = 100_000
_MIN_TIMED_S = 0.05   # a shorter span is not timed (see _rate)
# the service's /metrics on 127.0.0.1, never through http_proxy from the environment
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class DrainOptions:
    bootstrap: str
    namespace: str                       # the run's topics: <namespace>.transactions, ...
    records: int = 1_500_000
    workers: int | None = None           # None: one per input partition
    batch_max_records: int | None = None
    batch_max_wait_ms: int | None = None
    fraud_rate: float = 0.002
    seed: int = 7
    kafka: dict[str, str] = field(default_factory=dict)   # librdkafka settings for the service
    broker_pids: list[int] = field(default_factory=list)
    log_path: Path = Path("results/drain-service.log")
    progress: Callable[[str, int, int], None] = lambda phase, done, total: None
    timeout_s: float = 600.0
    state: bool = True                   # False: the service runs with --no-state
    snapshot_interval_s: float | None = None   # the service's --snapshot-interval (None: its default)

    @property
    def names(self) -> TopicNames:
        return TopicNames.namespaced(self.namespace)


def preload(opts: DrainOptions) -> float:
    """Write opts.records transactions (bench header: seq = index) to the input topic; seconds."""
    from bench.load.synth import DEFAULT_START, generate

    # idempotent: a retried produce request must not write a record twice, or the verdict
    # counts a duplicate the service never made
    producer = Producer({"bootstrap.servers": opts.bootstrap, "linger.ms": 50,
                         "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000,
                         "compression.type": "none", "enable.idempotence": True, "acks": "all"})
    topic, produce, poll = opts.names.transactions, producer.produce, producer.poll
    t0, now_ns = time.monotonic(), time.time_ns()
    for lo in range(0, opts.records, _CHUNK):
        # chunk k covers day k, so each card's event times keep going forward (per-card state)
        batch = generate(min(_CHUNK, opts.records - lo), seed=opts.seed + lo, id_offset=lo,
                         fraud_rate=opts.fraud_rate, start=DEFAULT_START + lo // _CHUNK * 86_400.0)
        values, keys = batch.payloads(), [k.encode() for k in batch.card_hash.tolist()]
        for i, value in enumerate(values):
            header = [(HEADER, pack_header(now_ns, lo + i, 0))]
            while True:
                try:
                    produce(topic, value, keys[i], headers=header)
                    break
                except BufferError:
                    poll(0.05)
        poll(0)
        opts.progress("preload", lo + len(values), opts.records)
    if producer.flush(120):
        raise TopicError(f"preloading {topic}: records still unsent after 120 s")
    return time.monotonic() - t0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> dict[str, list[tuple[dict, float]]]:
    from prometheus_client.parser import text_string_to_metric_families

    text = _DIRECT.open(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, list[tuple[dict, float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def _histogram_summary(samples, name: str) -> tuple[list[tuple[float, float]], float, float]:
    buckets = sorted((float(lab["le"]), v) for lab, v in samples.get(f"{name}_bucket", []))
    total = sum(v for _, v in samples.get(f"{name}_sum", []))
    count = sum(v for _, v in samples.get(f"{name}_count", []))
    return buckets, total, count


def _crossing(points: list[tuple[float, int]], level: float) -> float:
    """Time the progress curve first reached `level` records, linearly interpolated."""
    for (t0, d0), (t1, d1) in zip(points, points[1:]):
        if d1 >= level:
            return t0 + (t1 - t0) * ((level - d0) / (d1 - d0) if d1 > d0 else 1.0)
    return points[-1][0]


def drain(opts: DrainOptions) -> DrainResult:
    """Start the service on the pre-loaded topic, time it to the end, stop it; the figures."""
    topic = opts.names.transactions
    group = f"drain-{uuid.uuid4().hex[:8]}"
    probe = Consumer({"bootstrap.servers": opts.bootstrap, "group.id": group})
    try:
        parts = sorted(probe.list_topics(topic, timeout=30).topics[topic].partitions)
        ends = {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in parts}
        total = sum(ends.values())
        metrics_port = _free_port()
        argv = command_for("fraudstream", bootstrap=opts.bootstrap, namespace=opts.namespace,
                           workers=opts.workers or len(parts), group=group,
                           batch=SimpleNamespace(max_records=opts.batch_max_records,
                                                 max_wait_ms=opts.batch_max_wait_ms),
                           kafka=opts.kafka, state=opts.state,
                           snapshot_interval_s=opts.snapshot_interval_s)
        argv += ["--metrics-port", str(metrics_port), "--stats-interval", "5"]
        service = PipelineProcess(argv, opts.log_path)
        try:
            points, cpu = _follow(opts, probe, service, parts, ends, total)
            samples = _scrape(metrics_port)
        finally:
            code = service.stop()
    finally:
        probe.close()
    if code not in (0, None):
        raise PipelineUnderTestError(f"the scoring service exited {code}; log: {opts.log_path}\n{service.log_tail()}")
    t10, t90 = _crossing(points, 0.1 * total), _crossing(points, 0.9 * total)
    first = next(i for i, (_, d) in enumerate(points) if d > 0)   # points[0] is (start, 0)
    started = points[first][0]
    # the poll just before the first commit: timing from there, a topic committed between
    # two polls gets a rate over at least one poll interval, not over zero seconds
    before_first = points[first - 1][0]
    commit_buckets, _, _ = _histogram_summary(samples, "fraudstream_commit_seconds")
    _, batch_sum, batch_count = _histogram_summary(samples, "fraudstream_batch_records")
    window = 0.8 * total
    return DrainResult(
        records=total, partitions=len(parts), workers=opts.workers or len(parts),
        settings=DrainSettings(batch_max_records=opts.batch_max_records,
                               batch_max_wait_ms=opts.batch_max_wait_ms, kafka=opts.kafka,
                               state=opts.state, snapshot_interval_s=opts.snapshot_interval_s),
        steady_tps=_rate(window, t90 - t10),
        overall_tps=_rate(total, points[-1][0] - before_first),
        # polls from the first commit to the end: with a few, the rates are rough
        timed_polls=len(points) - first,
        window_polls=sum(1 for t, _ in points if t10 <= t <= t90),
        first_commit_after_s=round(started - points[0][0], 2),
        commit_p50_ms=round(bucket_quantile(commit_buckets, 0.50) * 1000, 2),
        commit_p99_ms=round(bucket_quantile(commit_buckets, 0.99) * 1000, 2),
        transactions=int(batch_count),
        mean_batch=round(batch_sum / batch_count) if batch_count else 0,
        cpu_cores={k: round(cores, 3) for k, (cores, _) in cpu.items()},
        cpu_us_per_tx={k: round(us, 2) for k, (_, us) in cpu.items()},
    )


def _rate(records: float, seconds: float) -> int | None:
    """records/seconds, or None for a span too short to time (polls are 0.1 s apart)."""
    return round(records / seconds) if seconds >= _MIN_TIMED_S else None


def _follow(opts, probe, service, parts, ends, total):
    """Poll the group's committed offsets until the end. CPU is metered from the last poll
    below 10 % of the input to the first at or above 90 %: {group: (cores, us per record)}."""
    topic = opts.names.transactions
    meter, cpu = procs.CpuMeter(), {}
    start: tuple[float, int] | None = None
    points: list[tuple[float, int]] = [(time.monotonic(), 0)]
    deadline = time.monotonic() + opts.timeout_s

    def groups():
        # a remote broker's CPU is not measured: no row rather than a zero
        return {"scorers": service.workers(), **({"broker": opts.broker_pids} if opts.broker_pids else {})}

    while True:
        got = probe.committed([TopicPartition(topic, p) for p in parts], timeout=30)
        done = sum(min(max(tp.offset, 0), ends[tp.partition]) for tp in got)
        now = time.monotonic()
        points.append((now, done))
        opts.progress("drain", done, total)
        if done < 0.1 * total or start is None:
            meter.start(groups(), now)
            start = (now, done)
        elif not cpu and done >= 0.9 * total:
            cores = meter.stop(groups(), now)
            per_record_s = (now - start[0]) / max(done - start[1], 1)
            cpu = {k: (v, v * per_record_s * 1e6) for k, v in cores.items()}
        if done >= total:
            return points, cpu
        if not service.alive():
            raise PipelineUnderTestError(f"the scoring service died; log: {opts.log_path}\n{service.log_tail()}")
        if now > deadline:
            raise PipelineUnderTestError(f"not drained in {opts.timeout_s:.0f} s: {done:,} of {total:,} committed")
        time.sleep(0.1)


def read_outputs(bootstrap: str, names: TopicNames, expected: int) -> DrainVerdict:
    """Read the three outputs read_committed; the exactly-once verdict against seqs 0..expected-1."""
    counts = np.zeros(expected, dtype=np.int32)
    flagged = np.zeros(expected, dtype=bool)
    alert_counts = np.zeros(expected, dtype=np.int32)
    unexpected = 0
    for topic, is_scores in ((names.scores, True), (names.alerts, False)):
        for msg in _read_topic(bootstrap, topic):
            seq = _seq(msg.headers())
            if seq is None or not 0 <= seq < expected:
                unexpected += 1
            elif is_scores:
                counts[seq] += 1
                flagged[seq] |= says_fraud([msg.value()])[0]
            else:
                alert_counts[seq] += 1
    dead = sum(1 for _ in _read_topic(bootstrap, names.deadletter))
    return DrainVerdict(
        scored=int(counts.sum()), missing=int((counts == 0).sum()),
        duplicated=int((counts > 1).sum()), unexpected=unexpected,
        alerts=int(alert_counts.sum()),
        alerts_mismatched=int((alert_counts != flagged.astype(np.int32)).sum()),
        dead_letters=dead,
    )


def _seq(headers) -> int | None:
    for key, value in headers or ():
        if key == HEADER and len(value) == HEADER_DTYPE.itemsize:
            return struct.unpack_from(">q", value, _SEQ_AT)[0]
    return None


def _read_topic(bootstrap: str, topic: str):
    """Every committed record of topic; stops when each partition reports its end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"drain-read-{uuid.uuid4().hex[:8]}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        parts = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        at_end: set[int] = set()
        deadline = time.monotonic() + 300
        while len(at_end) < len(parts):
            if time.monotonic() > deadline:
                raise TopicError(f"reading {topic} back took over 300 s")
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                if msg.error():
                    if msg.error().code() == -191:  # _PARTITION_EOF
                        at_end.add(msg.partition())
                        continue
                    raise TopicError(f"reading {topic}: {msg.error()}")
                at_end.discard(msg.partition())
                yield msg
    finally:
        consumer.close()
