"""Per-batch cost of the per-card state in the scoring loop (issue #19): not a test, a script.

    PYTHONPATH=. python -m tests.perf.state_batch [--batch 50] [--partitions 3] [--trials 9]

What core.loop does for one batch beside scoring, with the state on: StateHolds.admit (the
partitions without state), CardStates.velocity + the function it returns (called inside
score_batch), and CardStates.produce_changes (snapshots when due, the state gauges). Batches of
`--batch` records drawn from `--partitions` partitions in runs of consecutive records (what one
consume() of a worker owning 3 of latency-20k's 6 partitions returns), 10,000 cards. Gauges are
prometheus-client's multiprocess files, as in a service worker. The snapshot interval is long,
so what is timed is the per-batch cost, not the snapshots (one every few seconds per partition).
Prints CPU µs per batch per trial, then the median and spread of the trials.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import zlib

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="state-batch-"))

from confluent_kafka import Message, Producer, TopicPartition  # noqa: E402

from bench.load.synth import generate  # noqa: E402
from core.cardstate import CardStates  # noqa: E402
from core.config import ScoringConfig  # noqa: E402
from core.decode import decode_batch  # noqa: E402
from core.stateholds import StateHolds  # noqa: E402
from core.velocity import CardStore  # noqa: E402


def _batches(n_batches: int, size: int, partitions: int, run: int = 10) -> list[list[Message]]:
    """Batches of `size` records; a card's records all in one partition (crc32 of its key, as
    a Kafka key hash would), each batch taking runs of `run` records of each partition in turn."""
    events = generate(n_batches * size, seed=19, n_cards=10_000)
    queues: list[list[tuple[bytes, bytes]]] = [[] for _ in range(partitions)]
    for key, value in zip((c.encode() for c in events.card_hash), events.payloads()):
        queues[zlib.crc32(key) % partitions].append((key, value))
    taken = [0] * partitions
    batches, p = [], 0
    while len(batches) < n_batches:
        msgs = []
        while len(msgs) < size:
            q, i = queues[p], taken[p]
            for key, value in q[i:i + min(run, size - len(msgs))]:
                msgs.append(Message(topic="transactions", partition=p, offset=taken[p], key=key, value=value))
                taken[p] += 1
            if taken[p] >= len(q):
                return batches
            p = (p + 1) % partitions
        batches.append(msgs)
    return batches


def _offsets(msgs: list[Message]) -> list[TopicPartition]:
    last: dict[int, int] = {}
    for m in msgs:
        last[m.partition()] = m.offset()
    return [TopicPartition("transactions", p, o + 1) for p, o in last.items()]


def _trial(batches, partitions: int) -> tuple[float, float, float]:
    """µs per batch of the loop's state work over `batches`, on fresh stores: in all, in the
    velocity function score_batch calls, in produce_changes."""
    cards = CardStates(ScoringConfig(state_snapshot_s=3600.0), "bench")
    holds = StateHolds("bench", "transactions")
    for p in range(partitions):   # what a restore of an empty changelog leaves
        cards._stores[p] = CardStore()
        cards._due[p] = 0.0
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "log_level": 0,
                         "queue.buffering.max.messages": 2_000_000})
    decoded = [(decode_batch([m.value() for m in b]), [m.value() for m in b], _offsets(b)) for b in batches]
    clock = time.process_time   # CPU time: a trial preempted on a shared machine is not longer
    spent = kernel = changes = 0.0
    for msgs, (d, values, offsets) in zip(batches, decoded):
        t0 = clock()
        msgs = holds.admit(cards, None, msgs)
        velocity = cards.velocity(None, msgs)
        t1 = clock()
        velocity(d, values)
        t2 = clock()
        cards.produce_changes(producer, offsets)
        t3 = clock()
        spent += t3 - t0
        kernel += t2 - t1
        changes += t3 - t2
    producer.purge()
    return tuple(x / len(batches) * 1e6 for x in (spent, kernel, changes))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--batches", type=int, default=4000)
    ap.add_argument("--trials", type=int, default=9)
    args = ap.parse_args()
    batches = _batches(args.batches, args.batch, args.partitions)
    _trial(batches[:200], args.partitions)   # compile and warm up
    results = []
    for i in range(args.trials):
        us = _trial(batches, args.partitions)
        results.append(us)
        print(f"trial {i + 1}: {us[0]:.1f} µs/batch ({us[0] / args.batch:.2f} µs/record): velocity function "
              f"{us[1]:.1f}, produce_changes {us[2]:.1f}, the rest {us[0] - us[1] - us[2]:.1f}", flush=True)
    print(f"{args.trials} trials of {args.batches} batches of {args.batch} records, {args.partitions} partitions; "
          f"µs/batch median (min-max):")
    for j, what in enumerate(("all", "velocity function", "produce_changes")):
        xs = [r[j] for r in results]
        print(f"  {what}: {statistics.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})")


if __name__ == "__main__":
    main()
