"""Chaos: 10,000 hostile records of 16 kinds (tests/kafka/hostile.py) mixed into 20,000 valid
ones, through the real service. Every hostile record is dead-lettered once, with the reason
kind its kind calls for; every valid one is scored once; no scoring process dies."""

from __future__ import annotations

import os
import random
import time
import uuid
from collections import Counter

import pytest

from core import Scorer
from core.routing import H_REASON, H_SOURCE_OFFSET, H_SOURCE_PARTITION
from tests.kafka.eos_harness import Service, make_inputs, produce_inputs, verify, wait_drained
from tests.kafka.hostile import hostile_records
from tests.kafka.kafka_io import read_all

N_VALID = 20_000
N_HOSTILE = 10_000
WORKERS = 3


def _seed() -> int:
    seed = int(os.environ.get("CHAOS_SEED", time.time_ns() % 1_000_000))
    print(f"seed={seed} (rerun with CHAOS_SEED={seed})")
    return seed


def test_each_hostile_kind_gets_its_reason_without_kafka():
    # the same judgement the service makes, in-process: a failure here is a decoder bug
    records = hostile_records(2_000, random.Random(_seed()))
    result = Scorer.load().score_batch([value or b"" for _, value, _ in records])
    assert result.scored == []
    assert sorted(i for i, _ in result.dead) == list(range(len(records)))   # each one dead-lettered once
    wrong = Counter((records[i][0], records[i][2], reason[:50]) for i, reason in result.dead
                    if reason.split(":")[0] != records[i][2])
    assert not wrong, wrong.most_common(10)
    assert len({kind for kind, _, _ in records}) >= 12


@pytest.mark.kafka
@pytest.mark.timeout(600)
def test_hostile_records_are_all_dead_lettered_and_no_worker_dies(kafka_bootstrap, fresh_topics, tmp_path):
    seed = _seed()
    hostile = hostile_records(N_HOSTILE, random.Random(seed))
    expected = {value: want for _, value, want in hostile}   # a value always means one kind
    inputs = make_inputs(N_VALID, N_HOSTILE, seed, hostile=[value for _, value, _ in hostile])
    names = fresh_topics("hostile")
    produce_inputs(kafka_bootstrap, names.transactions, inputs)
    group = f"hostile-{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    with Service(kafka_bootstrap, names, group, tmp_path, workers=WORKERS) as service:
        service.wait_workers(WORKERS)
        done = wait_drained(kafka_bootstrap, group, names.transactions, timeout=300, service=service)
        code = service.stop()
    assert code == 0, service.tail()
    log = service.log_path.read_text(errors="replace")
    # 0 worker deaths: each slot started once, none died, nothing logged as an error
    assert log.count(" started (pid ") == WORKERS, service.tail()
    assert "died with" not in log and " ERROR " not in log, service.tail()

    v = verify(kafka_bootstrap, names, inputs)
    print(f"drained in {done - t0:.1f} s; {v}")
    assert v.exactly_once(), v
    assert v.scored == N_VALID and v.dead == N_HOSTILE, v

    wrong: Counter[tuple[str, str]] = Counter()
    for m in read_all(kafka_bootstrap, names.deadletter, expect=N_HOSTILE, idle_s=2.0):
        h = dict(m.headers())
        coord = (int(h[H_SOURCE_PARTITION]), int(h[H_SOURCE_OFFSET]))
        want = expected[inputs.hostile_coords[coord]]
        reason = h[H_REASON].decode()
        if reason.split(":")[0] != want:
            wrong[(want, reason[:60])] += 1
    assert not wrong, wrong.most_common(10)
