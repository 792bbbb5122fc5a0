"""The latency sink: read_committed consumers of fraud-scores and fraud-alerts.

A record's end-to-end latency is the time it became visible here (the consume call that
returned it) minus the intended send time the load generator put in its `bench` header, so
queueing anywhere (generator, broker, scorer, transaction commit) is counted. The output's
own timestamp (set when the pipeline produced it; Kafka timestamps are whole milliseconds)
splits that in two: *until scored* (send queue, broker, fetch, batching, scoring) and
*scored to visible* (the transaction commit and this reader's fetch). Latencies go into
histograms per *intended* second, so a run can be cut into windows afterwards.

Runs in a `spawn`ed child (`sink_main`) that owns a share of the partitions. It reports a
SinkTick every ~0.5 s; told to Finish, it reads what is committed now and reports SinkDone
(bench.run.protocol has the message flow). bench.measure.verdict turns what every sink read
into the exactly-once verdict.
"""

import os
import queue
import time

import numpy as np

from bench.load.generator import renice
from bench.load.header import HEADER, HEADER_DTYPE
from bench.load.schedule import NS
from bench.measure import histogram
from bench.run.protocol import Finish, SinkDone, SinkTick
from core.gctune import tune_gc_for_batches

__all__ = ["SinkSpec", "sink_main", "stage_latencies", "says_fraud"]

# The pipeline writes compact JSON; the seed baseline json.dumps' default separators.
_IS_FRAUD, _TRUE = b'"is_fraud"', (b":true", b": true")
_TICK_S = 0.5


class SinkSpec:
    """What one sink process needs; plain attributes so it pickles for `spawn`."""

    def __init__(self, index, count, config, scores_topic, alerts_topic, partitions, run_tag, nice=0):
        self.index = index
        self.count = count                  # sinks in all; this one reads partitions p % count == index
        self.config = config                # librdkafka consumer properties (read_committed)
        self.scores_topic = scores_topic
        self.alerts_topic = alerts_topic
        self.partitions = partitions        # {topic: n_partitions}
        self.run_tag = run_tag
        self.nice = nice


def _bench_header(headers) -> bytes | None:
    if headers:
        for key, value in headers:
            if key == HEADER:
                return value
    return None


def says_fraud(values: list[bytes]) -> list[bool]:
    """Whether each output says `"is_fraud": true`.

    The scorer appends its fields after the input's, so the field is searched from the end:
    searching the whole ~650-byte value for both spellings took a quarter of the sink's CPU
    at 80,000 tx/s."""
    return [(i := v.rfind(_IS_FRAUD)) >= 0 and v.startswith(_TRUE, i + 10) for v in values]


def stage_latencies(intended_ns: np.ndarray, output_ms: np.ndarray, visible_ns: int) -> np.ndarray:
    """Microseconds (3, n): end to end, until scored, scored to visible, for records intended
    at `intended_ns` whose outputs carry timestamp `output_ms` and became visible at
    `visible_ns`. The two stages add up to end to end; a stage the millisecond timestamp puts
    below zero is 0."""
    e2e = (visible_ns - intended_ns) // 1000
    # minimum/maximum, not np.clip: 4.4 vs 11 µs on the ~20-record batches of low rates
    until = np.minimum(np.maximum((output_ms * 1_000_000 - intended_ns) // 1000, 0), e2e)
    return np.stack([e2e, until, e2e - until])


def sink_main(spec: SinkSpec, commands, results) -> None:
    """Child process body: consume until told to finish, reporting every ~0.5 s."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    parent = os.getppid()
    renice(spec.nice)
    consumer = Consumer(spec.config)
    # 20,000 Message objects a consume() set off the cyclic collector over and over: ~15% of
    # the sink's CPU at 80,000 tx/s (py-spy). The sink makes no reference cycles to speak of.
    tune_gc_for_batches()
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                     for topic, n in spec.partitions.items()
                     for p in range(n) if p % spec.count == spec.index])
    scores_topic, tag = spec.scores_topic, spec.run_tag
    score_seqs, flagged, alert_seqs = [], [], []
    lat_us: dict[int, list] = {}
    visible: dict[int, int] = {}
    n_scores = n_alerts = no_header = foreign = 0
    next_tick = time.monotonic() + _TICK_S
    finishing = quiet = 0

    def tick():
        hists = {}
        for sec, parts in lat_us.items():
            stages = np.concatenate(parts, axis=1)
            blobs = []
            for values in stages:
                h = histogram.new_histogram()
                histogram.record_array(h, values)
                blobs.append(histogram.encode(h))
            hists[sec] = tuple(blobs)
        results.put(SinkTick(spec.index, hists, dict(visible), n_scores, n_alerts))
        lat_us.clear()
        visible.clear()

    while True:
        # consume() waits out its whole timeout unless the batch fills, which would add up
        # to the timeout to every latency: block in poll() for the first record only.
        first = consumer.poll(0.05)
        msgs = consumer.consume(num_messages=20_000, timeout=0) if first is not None else []
        now = time.time_ns()
        if first is not None:
            msgs.insert(0, first)
        if msgs:
            # Comprehensions, not one loop with branches: this runs for every record.
            ok = [m for m in msgs if m.error() is None]
            hdrs = [h[0][1] if h and h[0][0] == HEADER else _bench_header(h)
                    for h in [m.headers() for m in ok]]
            is_score = [m.topic() == scores_topic for m in ok]
            good = [h is not None and len(h) == HEADER_DTYPE.itemsize for h in hdrs]
            no_header += good.count(False)
            s_hdr = [h for h, g, sc in zip(hdrs, good, is_score) if g and sc]
            a_hdr = [h for h, g, sc in zip(hdrs, good, is_score) if g and not sc]
            s_msgs = [m for m, g, sc in zip(ok, good, is_score) if g and sc]
            s_flag = says_fraud([m.value() for m in s_msgs])
            if s_hdr:
                rec = np.frombuffer(b"".join(s_hdr), dtype=HEADER_DTYPE)
                ok = rec["tag"] == tag
                foreign += int((~ok).sum())
                score_seqs.append(rec["seq"].astype(np.int64))
                flagged.append(np.asarray(s_flag, dtype=bool))
                t = rec["t"].astype(np.int64)[ok]
                out_ms = np.array([m.timestamp()[1] for m in s_msgs], dtype=np.int64)[ok]
                lat = stage_latencies(t, out_ms, now)
                secs = t // NS
                for s in np.unique(secs).tolist():
                    lat_us.setdefault(s, []).append(lat[:, secs == s])
                visible[now // NS] = visible.get(now // NS, 0) + len(s_hdr)
                n_scores += len(s_hdr)
            if a_hdr:
                rec = np.frombuffer(b"".join(a_hdr), dtype=HEADER_DTYPE)
                alert_seqs.append(rec["seq"].astype(np.int64))
                n_alerts += len(a_hdr)
        if time.monotonic() >= next_tick:
            tick()
            next_tick = time.monotonic() + _TICK_S
            if os.getppid() != parent:   # the runner is gone
                consumer.close()
                return
            try:
                if isinstance(commands.get_nowait(), Finish):
                    finishing = 1
            except queue.Empty:
                pass
        if finishing:
            # read on until two consecutive empty polls: everything committed so far is in
            quiet = quiet + 1 if not msgs else 0
            if quiet >= 2:
                break
    tick()
    consumer.close()
    cat = lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dt)  # noqa: E731
    results.put(SinkDone(spec.index, cat(score_seqs, np.int64), cat(flagged, bool),
                         cat(alert_seqs, np.int64), no_header, foreign))
