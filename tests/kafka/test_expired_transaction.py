"""A transaction that Kafka itself aborts: a worker frozen (SIGSTOP) inside an open transaction,
its outputs on the broker, past transaction.timeout.ms. Kafka aborts it and bumps the
producer's epoch, and from then on answers the worker exactly as it would answer one whose
transactional.id another process took: "fenced by newer producer instance". The worker must
say what happened (core.errors.ExpiredByKafka, exit code 7), not blame a twin (exit code 4,
which counts towards an id collision), and its restart must deliver exactly once.

transaction.timeout.ms is 2 s; the broker looks for timed-out transactions every 10 s
(transaction.abort.timed.out.transaction.cleanup.interval.ms), so the freeze lasts 14 s. The
session (30 s) outlasts it: the frozen worker keeps its partitions, no rebalance muddles it."""

from __future__ import annotations

import random
import re
import signal
import time
import uuid

import pytest

from tests.kafka.eos_harness import (Service, finish, make_inputs, produce_inputs, thaw, trickle, verify, wait_drained,
                                     wait_first_commit)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

TXN_TIMEOUT_MS = 2_000
FREEZE_S = 14.0


def test_a_transaction_kafka_aborted_is_not_blamed_on_a_twin(kafka_bootstrap, fresh_topics, tmp_path, monkeypatch):
    names = fresh_topics("expired")
    inputs = make_inputs(12_000, 12, seed=41)
    produce_inputs(kafka_bootstrap, names.transactions, inputs, inputs.records[:4_000])
    group = f"expired-{uuid.uuid4().hex[:8]}"
    # every transaction held open 50 ms once its outputs are acknowledged: the freeze lands there
    monkeypatch.setenv("FRAUDSTREAM_FAULTS", "stall_acked:1")
    svc = Service(kafka_bootstrap, names, group, tmp_path, workers=2,
                  extra=("-X", f"transaction.timeout.ms={TXN_TIMEOUT_MS}"))
    monkeypatch.delenv("FRAUDSTREAM_FAULTS")
    tail = trickle(kafka_bootstrap, names.transactions, inputs, inputs.records[4_000:], tps=400)   # 20 s
    frozen = None
    try:
        svc.wait_workers(2)
        wait_first_commit(kafka_bootstrap, group, names.transactions, svc)
        tail.start()
        rng = random.Random(41)
        for _ in range(20):   # until a worker is caught sleeping in the stall, inside its transaction
            frozen = svc.kill_random_worker(rng, signal.SIGSTOP, in_txn=True)
            if frozen is not None:
                break
        assert frozen is not None, f"no worker inside a transaction:\n{svc.tail()}"
        time.sleep(FREEZE_S)
    finally:
        thaw(frozen)
        finish(tail)
    try:
        wait_drained(kafka_bootstrap, group, names.transactions, timeout=120, service=svc)
        assert svc.stop() == 0, svc.tail()
    finally:
        finish(None, svc)
    log = svc.log_path.read_text()
    died = [line for line in log.splitlines() if f"(pid {frozen}) died with" in line]
    print("\n".join(died))
    assert died, svc.tail()   # the thawed worker could not carry on with a transaction Kafka aborted
    assert re.search(r"exit code 7 \(Kafka gave up on it: transaction timeout or outage\) after [\d.]+ s: \S+: "
                     r"Kafka aborted its transaction, open "
                     r"1\d s, past transaction.timeout.ms \(2 s; ", died[0]), died[0]
    assert "(fenced by another process" not in log, svc.tail()
    v = verify(kafka_bootstrap, names, inputs)
    print(v)
    assert v.exactly_once(), v
