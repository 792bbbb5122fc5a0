"""Restore figures of the per-card state on a real broker (issue #19): not a test, a script.

    PYTHONPATH=. python -m tests.perf.state_restore [--cards 1000000] [--trials 3]
        [--bootstrap 127.0.0.1:9092] [--namespace NS --keep] [--skip-kill]

1. Writes the changelog of `--cards` cards (2 events each) to partition 0 of a fresh
   namespace's fraud-card-state (or reuses `--namespace`'s, when it holds them), then restores
   it with core.cardstate (what a newly assigned slot does) `--trials` times: records/s each.
2. Starts `python -m core --workers 1` on that namespace with input flowing (200 tx/s), waits
   for its first commit, then `--trials` times: SIGKILLs the worker and times kill -> the
   restarted worker's first committed batch of partition 0 (the one holding the 1M cards:
   restored first), with the worker's log lines of that restart relative to the kill.
Prints the median and the spread of both. The topics are deleted at the end unless `--keep`
(then rerun with `--namespace` to measure another tree's code on the very same changelog:
copy this script into that tree and run it there, alternating).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from bench.kafka.topics import create_topics, delete_topics
from core.cardstate import CardStates
from core.config import ScoringConfig
from core.gctune import tune_gc_for_batches
from core.topics import TopicNames
from core.velocity import CardStore
from tests.kafka.eos_harness import Service, make_inputs, produce_inputs, wait_first_commit

T0 = 1_767_225_600.0
_PHASES = ("started", "consuming", "assigned", "restored", "died")


def _changelog(n: int) -> list[tuple[bytes, bytes]]:
    store = CardStore()
    keys = [b"%016x" % i for i in range(n)]
    rng = np.random.default_rng(5)
    for rep in range(2):
        for i in range(0, n, 65536):
            k = keys[i:i + 65536]
            m = len(k)
            store.apply(k, T0 + rep * 60 + np.arange(m) * 1e-4, rng.random(m).astype(np.float32) * 100,
                        rng.integers(0, 30, m))
    store._changed[:] = store.used != 0   # every card, once
    return store.changes()


def _write(bootstrap: str, topic: str, records) -> float:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000,
                  "queue.buffering.max.messages": 2_000_000, "compression.type": "lz4"})
    t0 = time.perf_counter()
    for key, value in records:
        while True:
            try:
                p.produce(topic, value, key, 0)
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(120) == 0
    return time.perf_counter() - t0


def _records_in(bootstrap: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
    try:
        for attempt in range(20):   # a topic just created may have no leader for a moment
            try:
                low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
                return high - low
            except KafkaException:
                if attempt == 19:
                    raise
                time.sleep(0.5)
    finally:
        c.close()


def _restore_rates(bootstrap: str, names: TopicNames, n: int, trials: int) -> list[float]:
    cfg = ScoringConfig(bootstrap_servers=bootstrap, topics=names, group_id="restore-probe")
    tune_gc_for_batches()   # as a worker does before its first restore
    rates = []
    for _ in range(trials):
        states = CardStates(cfg, "probe")
        t0 = time.perf_counter()
        store = states._restore_one(0)
        dt = time.perf_counter() - t0
        assert len(store) >= n, (len(store), n)   # (a reused namespace: + the cards scored since)
        records = states.restore_stats.last_records
        rates.append(records / dt)
        print(f"restore: {records:,} records in {dt:.2f} s = {records / dt:,.0f} records/s; "
              f"state {store.nbytes() / 1e6:,.0f} MB ({store.nbytes() / n:.0f} bytes/card)", flush=True)
        states.close()
        del store
    return rates


def _timeline(log: str, killed_at: float, pid: int) -> str:
    """The service's log lines about the restart after the kill, as seconds after it."""
    out = []
    for line in log.splitlines():
        m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})", line)
        if not m or not any(w in line for w in _PHASES):
            continue
        at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(m.group(2)) / 1000
        if at >= killed_at - 0.01 and f"pid={pid} " not in line:
            out.append(f"  +{at - killed_at:5.2f} s {line[24:150]}")
    return "\n".join(out)


def _kill_to_commit(bootstrap: str, names: TopicNames, tmp: Path, trials: int) -> list[float]:
    # one group per namespace: a rerun continues from its offsets (a new group would find the
    # outputs of the last run and, with offset_reset=refuse, rightly not start)
    group = f"restore-{names.transactions.rsplit('.', 1)[0]}"
    inputs = make_inputs(2000, 0, 11)
    flowing = threading.Event()
    flowing.set()

    def feed() -> None:   # 200 tx/s until the trials are done (a restart must find input)
        while flowing.is_set():
            produce_inputs(bootstrap, names.transactions, inputs, inputs.records[:1000], tps=200)

    feeder = threading.Thread(target=feed)
    feeder.start()
    config = tmp / "restore.yaml"
    config.write_text("offset_reset: earliest\n")   # a reused namespace holds earlier runs' outputs
    svc = Service(bootstrap, names, group, tmp, workers=1, extra=("--batch-max-wait-ms", "25", "--config", str(config)),
                  tag="restore")
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_committed"})
    tp0 = [TopicPartition(names.transactions, 0)]
    took = []
    try:
        svc.wait_workers(1, timeout=120)
        wait_first_commit(bootstrap, group, names.transactions, svc, timeout=180)
        for _ in range(trials):
            time.sleep(3.0)   # the worker is scoring partition 0 with its 1M cards
            before = probe.committed(tp0, timeout=10)[0].offset
            [pid] = svc.worker_pids()
            killed, killed_wall = time.monotonic(), time.time()
            os.kill(pid, signal.SIGKILL)
            while probe.committed(tp0, timeout=10)[0].offset <= before:
                assert time.monotonic() - killed < 120, svc.tail()
                time.sleep(0.01)
            took.append(time.monotonic() - killed)
            print(f"kill -9 -> first committed batch of the restarted worker: {took[-1]:.2f} s", flush=True)
            time.sleep(0.5)
            print(_timeline(svc.log_path.read_text(errors="replace"), killed_wall, pid), flush=True)
        in_worker = [int(n) / float(s) for n, s in re.findall(
            r"restored \S+\[0\]: \d+ cards from (\d+) records in ([\d.]+) s", svc.log_path.read_text())]
        _summary("restore in the worker, records/s", in_worker, ",.0f")
        return took
    finally:
        probe.close()
        svc.stop()
        flowing.clear()
        feeder.join()


def _summary(what: str, xs: list[float], fmt: str) -> None:
    if xs:
        print(f"{what}: median {format(statistics.median(xs), fmt)} (min {format(min(xs), fmt)}, "
              f"max {format(max(xs), fmt)}, {len(xs)} trials)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cards", type=int, default=1_000_000)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--namespace", help="reuse this namespace's topics (written when empty)")
    ap.add_argument("--keep", action="store_true", help="do not delete the topics at the end")
    ap.add_argument("--skip-kill", action="store_true", help="only the restore rate")
    args = ap.parse_args()
    names = TopicNames.namespaced(args.namespace or f"restore-{uuid.uuid4().hex[:8]}")
    print(f"namespace {names.transactions.rsplit('.', 1)[0]}", flush=True)
    create_topics(args.bootstrap, names)
    try:
        if _records_in(args.bootstrap, names.state) < args.cards:
            records = _changelog(args.cards)
            print(f"changelog: {len(records):,} records, {sum(len(v) for _, v in records) / len(records):.0f} "
                  f"bytes each; written in {_write(args.bootstrap, names.state, records):.1f} s", flush=True)
            del records
        rates = _restore_rates(args.bootstrap, names, args.cards, args.trials)
        took = []
        if not args.skip_kill:
            with tempfile.TemporaryDirectory() as tmp:
                took = _kill_to_commit(args.bootstrap, names, Path(tmp), args.trials)
        _summary("restore records/s", rates, ",.0f")
        _summary("kill -9 -> first commit (s)", took, ".2f")
    finally:
        if not args.keep:
            delete_topics(args.bootstrap, names)


if __name__ == "__main__":
    main()
