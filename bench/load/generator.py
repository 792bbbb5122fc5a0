"""The load generator: producer processes that send at *intended* times (open loop).

Each process pre-generates a pool of transactions with bench.load.synth (bench.load.pool: replayed
in laps that keep every card's event times in order), then follows the plan the
runner sends it (constant-rate segments, bench.load.schedule) and produces every record when it is
due. A record carries one header, `bench` (bench.load.header): intended send time, sequence
number, run tag. The time a record actually
went to the client minus its intended time is the *publish delay*, kept in its own histogram
(each record's own, stamped as it is handed to the client): a generator that falls behind
shows it there instead of hiding it, and in the sends counted by the second they happened.

Runs in a `spawn`ed child (`producer_main`); the Kafka client is created inside it. It
reports Ready, then a ProducerTick every ~0.5 s, and ProducerDone after Stop and a flush, with
the sequence numbers of the fraud it sent and their patterns (bench.run.protocol has the
message flow).
"""

import os
import queue
import time
from typing import Callable

import numpy as np

from bench.load.header import HEADER, SEQ_BITS, pack_header
from bench.load.pool import build_pool
from bench.load.schedule import NS, RateLimiter
from bench.measure import histogram
from bench.run.protocol import Plan, ProducerDone, ProducerTick, Ready, Stop
from core.routing import ANY_PARTITION

__all__ = ["ProducerSpec", "producer_main", "renice", "min_sleep_s", "send_due"]

_CHUNK = 2_000   # most records sent between two looks at the clock and the command queue
_TICK_S = 0.5


def min_sleep_s(tps: float) -> float:
    """Shortest sleep between two sends at `tps`: 1 ms up to 10,000 tx/s, then rate / 10^7 s
    (2 ms at 20,000), at most 5 ms.

    Every wake-up costs the generator ~0.1 ms of CPU beyond its records. Measured at 20,000
    tx/s on 2 cores, with the generator sharing them with the pipeline: 1 ms -> 0.43 core,
    2 ms -> 0.37, 3 ms -> 0.34, 5 ms -> 0.28. The records due during a sleep go out together
    when it ends, late by up to its length; that shows in publish delay.
    """
    return min(max(tps / 1e7, 0.001), 0.005)


def send_due(limiter: RateLimiter, send: Callable[[int, int], None], min_sleep: float) -> bool:
    """One wake-up of the send loop: send the records now due as one chunk, then sleep until
    the next is due, at least `min_sleep` unless the chunk was full (a backlog to catch up).
    False once the segment has handed out every record.

    Records that come due while a chunk goes out wait for the next wake-up. Taking them at
    once gave a cascade of ever smaller chunks, each paying the chunk's fixed numpy and poll
    cost: at 50,000 tx/s they shrank to ~1 record and the generator used a whole core (23 µs
    of CPU per record, 6-7.5 µs with one chunk per wake-up).
    """
    span = limiter.take(_CHUNK)
    if span is None:
        return False
    lo, hi = span
    if hi > lo:
        send(lo, hi)
    if hi - lo < _CHUNK:
        limiter.wait(0.01, min_s=min_sleep)
    return True


class ProducerSpec:
    """What one producer process needs; plain attributes so it pickles for `spawn`."""

    def __init__(self, index, bootstrap, topic, config, traffic, run_tag, nice=0):
        self.index = index
        self.bootstrap = bootstrap
        self.topic = topic
        self.config = config          # librdkafka producer properties
        self.traffic = traffic        # bench.spec.scenario.Traffic
        self.run_tag = run_tag        # 64-bit int naming the run
        self.nice = nice              # added to the process's nice value (best effort)


def renice(delta: int) -> None:
    """Give this harness process its own scheduling group, `delta` nicer (best effort).

    Linux with autogroup (the default on desktops and many VMs) shares CPU fairly between
    *sessions*, and nice only counts inside one. A child of `bench run` shares the session
    of whatever else the user runs there, so it starts a session of its own, and the nice
    value goes to that session's group (a negative one needs root / CAP_SYS_NICE).
    """
    try:
        os.setsid()
    except OSError:
        pass
    if not delta:
        return
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(delta))
    except OSError:
        try:
            os.nice(delta)
        except OSError:
            pass


class _Stats:
    """Per-second send counts and publish-delay histograms since the last tick.

    Chunks are only collected here; counting and histogram recording happen once a tick,
    so a busy send loop does not pay numpy and hdrh overhead per chunk."""

    def __init__(self):
        self._intended: list[np.ndarray] = []
        self._actual: list[np.ndarray] = []

    def add(self, intended: np.ndarray, actual: np.ndarray) -> None:
        """intended, actual: epoch ns each record was due and was handed to the client."""
        self._intended.append(intended)
        self._actual.append(actual)

    def flush(self) -> tuple[dict, dict]:
        """({intended second: (records, publish-delay blob)}, {second sent: records})."""
        if not self._intended:
            return {}, {}
        intended, actual = np.concatenate(self._intended), np.concatenate(self._actual)
        self._intended, self._actual = [], []
        delay = np.maximum(actual - intended, 0) // 1000
        secs = intended // NS
        out = {}
        for s in np.unique(secs).tolist():
            mask = secs == s
            h = histogram.new_histogram()
            histogram.record_array(h, delay[mask])
            out[s] = (int(mask.sum()), histogram.encode(h))
        sent_secs, counts = np.unique(actual // NS, return_counts=True)
        return out, dict(zip(sent_secs.tolist(), counts.tolist()))


def producer_main(spec: ProducerSpec, commands, results) -> None:
    """Child process body: build the pool, then follow plans until told to stop."""
    from confluent_kafka import Producer

    parent = os.getppid()
    renice(spec.nice)
    t = time.perf_counter()
    pool = build_pool(spec.traffic, spec.index)
    errors = []

    def on_error(err, msg):  # only failures are reported (delivery.report.only.error)
        if err is not None:
            errors.append(str(err))

    producer = Producer({**spec.config, "delivery.report.only.error": True, "on_delivery": on_error})
    results.put(Ready(spec.index, time.perf_counter() - t))

    produce, poll, topic, tag = producer.produce, producer.poll, spec.topic, spec.run_tag
    seq_base = spec.index << SEQ_BITS
    stats = _Stats()
    plan: list = []
    limiter = None
    stopping = False
    seq = 0
    next_tick = time.monotonic() + _TICK_S

    now_ns = time.time_ns

    def send_chunk(lo: int, hi: int) -> None:
        nonlocal seq
        intended = limiter.intended_array(lo, hi)
        values, keys = pool.take(seq, hi - lo)
        # each record's own send time, not one interpolated across the chunk (that smeared a
        # stall mid-chunk over all its records): ~0.05 µs a record against ~2 µs to produce
        actual = []
        stamp = actual.append
        for ts, value, key in zip(intended.tolist(), values, keys):
            header = [(HEADER, pack_header(ts, seq_base | seq, tag))]
            while True:
                try:  # by position: see core.routing.ANY_PARTITION
                    produce(topic, value, key, ANY_PARTITION, None, None, 0, header)
                    break
                except BufferError:  # client queue full: the delay shows in publish delay
                    poll(0.005)
            stamp(now_ns())
            seq += 1
        poll(0)
        stats.add(intended, np.array(actual, dtype=np.int64))

    while True:
        if limiter is None or time.monotonic() >= next_tick:
            try:
                while True:
                    match commands.get(block=limiter is None and not plan and not stopping, timeout=0.05):
                        case Plan(segments=segments, replace=replace):
                            if replace:
                                plan, limiter = [], None
                            plan.extend(segments)
                        case Stop():
                            stopping = True
            except queue.Empty:
                pass
            if time.monotonic() >= next_tick:
                results.put(ProducerTick(spec.index, *stats.flush()))
                next_tick = time.monotonic() + _TICK_S
                if os.getppid() != parent:   # the runner is gone: nobody will stop us
                    producer.purge()
                    return
        if limiter is None:
            if plan:
                start, duration, tps = plan.pop(0)
                limiter = RateLimiter(tps, start, duration)
                min_sleep = min_sleep_s(tps)
                continue
            if stopping:
                break
            continue
        if not send_due(limiter, send_chunk, min_sleep):
            limiter = None

    remaining = producer.flush(60)
    results.put(ProducerTick(spec.index, *stats.flush()))
    positives, patterns = pool.positives(seq_base, seq)
    if remaining:
        errors.append(f"{remaining} records still queued after a 60 s flush")
    results.put(ProducerDone(spec.index, seq, len(errors), errors[:5], positives, patterns))
