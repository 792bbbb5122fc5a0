"""Restore figures of the per-card state on a real broker (issue #19): not a test, a script.

    PYTHONPATH=. python -m tests.perf.state_restore [--cards 1000000] [--bootstrap 127.0.0.1:9092]

1. Writes the changelog of `--cards` cards (2 events each) to partition 0 of a fresh
   namespace's fraud-card-state, then restores it with core.cardstate (what a newly assigned
   slot does), three times: records/s of each.
2. Starts `python -m core --workers 1` on that namespace with input flowing (200 tx/s), waits
   for its first commit, SIGKILLs the worker and times kill -> the restarted worker's first
   committed batch of partition 0 (the one holding the 1M cards: restored first).
The topics are deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Producer

from bench.kafka.topics import create_topics, delete_topics
from core.cardstate import CardStates
from core.config import ScoringConfig
from core.topics import TopicNames
from core.velocity import CardStore
from tests.kafka.eos_harness import Service, committed_offsets, make_inputs, produce_inputs, wait_first_commit

T0 = 1_767_225_600.0


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
    store._changed = {c: None for c in range(store.latest.shape[0]) if store.used[c]}
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


def _restore_rate(bootstrap: str, names: TopicNames, n: int) -> list[float]:
    cfg = ScoringConfig(bootstrap_servers=bootstrap, topics=names, group_id="restore-probe")
    rates = []
    for _ in range(3):
        states = CardStates(cfg, "probe")
        t0 = time.perf_counter()
        store = states._restore_one(0)
        dt = time.perf_counter() - t0
        assert len(store) == n, (len(store), n)
        rates.append(n / dt)
        print(f"restore: {n:,} records in {dt:.2f} s = {n / dt:,.0f} records/s; "
              f"state {store.nbytes() / 1e6:,.0f} MB ({store.nbytes() / n:.0f} bytes/card)")
        states.close()
    return rates


def _kill_to_commit(bootstrap: str, names: TopicNames, tmp: Path) -> float:
    group = f"restore-{uuid.uuid4().hex[:6]}"
    inputs = make_inputs(6000, 0, 11)
    feeder = threading.Thread(target=produce_inputs, args=(bootstrap, names.transactions, inputs),
                              kwargs={"tps": 200})
    feeder.start()
    svc = Service(bootstrap, names, group, tmp, workers=1, extra=("--batch-max-wait-ms", "25"), tag="restore")
    try:
        svc.wait_workers(1, timeout=120)
        wait_first_commit(bootstrap, group, names.transactions, svc, timeout=180)
        time.sleep(1.0)
        before = committed_offsets(bootstrap, group, names.transactions, range(6))
        [pid] = svc.worker_pids()
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        while True:
            now = committed_offsets(bootstrap, group, names.transactions, range(6))
            if now[0] > before[0]:     # partition 0 holds the 1M cards: restored, then scored
                took = time.monotonic() - killed
                break
            assert time.monotonic() - killed < 120, svc.tail()
            time.sleep(0.02)
        print(f"kill -9 -> first committed batch of the restarted worker: {took:.2f} s")
        print("\n".join(line for line in svc.tail(200).splitlines() if "restored" in line)[-600:])
        return took
    finally:
        svc.stop()
        feeder.join()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cards", type=int, default=1_000_000)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = ap.parse_args()
    names = TopicNames.namespaced(f"restore-{uuid.uuid4().hex[:8]}")
    create_topics(args.bootstrap, names)
    try:
        records = _changelog(args.cards)
        print(f"changelog: {len(records):,} records, {sum(len(v) for _, v in records) / len(records):.0f} "
              f"bytes each; written in {_write(args.bootstrap, names.state, records):.1f} s")
        del records
        _restore_rate(args.bootstrap, names, args.cards)
        with tempfile.TemporaryDirectory() as tmp:
            _kill_to_commit(args.bootstrap, names, Path(tmp))
    finally:
        delete_topics(args.bootstrap, names)


if __name__ == "__main__":
    main()
