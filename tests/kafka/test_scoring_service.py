"""The scoring service against a real broker: poison messages, graceful stop and restart,
adding and removing workers mid-run. Every run ends with the read_committed verdict."""

from __future__ import annotations

import random
import re
import threading
import time
import uuid

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from core.config import ScoringConfig
from core.identity import is_fenced, kafka_error_of
from core.loop import ScoringConsumer
from core.metrics import LoopMetrics
from core.routing import H_REASON, H_SOURCE_OFFSET, H_SOURCE_PARTITION
from tests.kafka.eos_harness import (Service, committed_offsets, drain_with_new_service, finish, hostile_values,
                                     make_inputs, produce_inputs, trickle, verify, wait_drained, wait_first_commit)
from tests.kafka.kafka_io import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def scorer():
    import core.scorer as mod
    return mod.Scorer.load()


def _score_until_drained(bootstrap, names, scorer, prefix, *, group=None, **settings):
    """Run one ScoringConsumer in this process until its group (default: a new one) has
    committed the whole input; returns its metrics snapshot."""
    group = group or f"{prefix}-{uuid.uuid4().hex[:6]}"
    config = ScoringConfig(bootstrap_servers=bootstrap, topics=names, group_id=group,
                           transactional_id_prefix=group, stats_interval_s=0, **settings)
    metrics = LoopMetrics(registry=CollectorRegistry())
    consumer = ScoringConsumer(config, scorer, metrics=metrics)
    runner = threading.Thread(target=consumer.run)
    runner.start()
    try:
        wait_drained(bootstrap, group, names.transactions, timeout=60)
    finally:
        consumer.stop()
        runner.join(30)
    assert not runner.is_alive()
    return metrics.snapshot()


def test_poison_at_every_position_of_a_batch(kafka_bootstrap, fresh_topics, scorer):
    """Batches of 8 on one partition, the k-th batch poisoned at position k: nothing blocks,
    every valid record is scored once, every poison is dead-lettered once with its coordinates."""
    names = fresh_topics("poison")
    size = 8
    rng = random.Random(11)
    print("seed=11")
    poisons = [v for v in hostile_values(9, rng) if v][:size]
    valid = make_inputs(size * size, 0, seed=11)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    expected_dead: dict[int, bytes] = {}
    delivered: list = []
    valid_iter = iter(valid.records)
    for batch in range(size):
        for pos in range(size):
            if pos == batch:
                value, key = poisons[batch], b"poison"
            else:
                key, value, _ = next(valid_iter)
            producer.produce(names.transactions, value, key, partition=0,
                             on_delivery=lambda err, msg: delivered.append((err, msg.offset(), msg.value())))
    assert producer.flush(30) == 0
    assert all(err is None for err, _, _ in delivered)
    for _, offset, value in delivered:
        if value in poisons:
            expected_dead[offset] = value
    assert sorted(expected_dead) == [b * size + b for b in range(size)]

    snap = _score_until_drained(kafka_bootstrap, names, scorer, "poison",
                                batch_max_records=size, batch_max_wait_ms=1000)
    assert snap.deadletters == size and snap.processed == size * (size - 1)
    assert snap.batches == size, f"batches did not align to {size} records: {snap}"

    dead = read_all(kafka_bootstrap, names.deadletter, expect=size)
    got = {}
    for m in dead:
        h = dict(m.headers())
        assert int(h[H_SOURCE_PARTITION]) == 0 and h[H_REASON]
        got[int(h[H_SOURCE_OFFSET])] = m.value()
    assert got == expected_dead
    scores = read_all(kafka_bootstrap, names.scores, expect=size * (size - 1))
    assert len(scores) == size * (size - 1)


def test_sigterm_mid_run_then_restart(kafka_bootstrap, fresh_topics, tmp_path):
    """SIGTERM while input still arrives: each worker finishes the transaction it has open and
    the service exits 0 with input left; a restart scores the rest, all exactly once."""
    names = fresh_topics("term")
    inputs = make_inputs(40_000, 60, seed=5)
    split = len(inputs.records) // 2
    produce_inputs(kafka_bootstrap, names.transactions, inputs, inputs.records[:split])
    group = f"term-{uuid.uuid4().hex[:6]}"
    first = Service(kafka_bootstrap, names, group, tmp_path, workers=3, tag="first")
    tail = trickle(kafka_bootstrap, names.transactions, inputs, inputs.records[split:], tps=2000)   # ~10 s
    try:
        first.wait_workers(3)
        wait_first_commit(kafka_bootstrap, group, names.transactions, first)
        tail.start()
        time.sleep(2)
        assert tail.is_alive(), "the input ended before the SIGTERM: nothing was mid-run"
        t0 = time.monotonic()
        assert first.stop(timeout=45) == 0, first.tail()
        stop_s = time.monotonic() - t0
        log = first.log_path.read_text()
        assert "SIGTERM: stopping workers" in log and "all workers stopped" in log
        assert "died with" not in log
        done = sum(max(0, o) for o in committed_offsets(kafka_bootstrap, group, names.transactions,
                                                        range(6)).values())
        print(f"stopped in {stop_s:.1f}s with {done:,} of {len(inputs.records):,} committed")
        assert 0 < done < len(inputs.records)
        tail.join()
        drain_with_new_service(kafka_bootstrap, names, group, tmp_path, workers=3)
    finally:
        finish(tail, first)
    v = verify(kafka_bootstrap, names, inputs)
    print(v)
    assert v.exactly_once(), v


def test_add_and_remove_a_worker_mid_run(kafka_bootstrap, fresh_topics, tmp_path):
    names = fresh_topics("rebal")
    inputs = make_inputs(60_000, 60, seed=7)
    split = len(inputs.records) // 2
    produce_inputs(kafka_bootstrap, names.transactions, inputs, inputs.records[:split])
    group = f"rebal-{uuid.uuid4().hex[:6]}"
    base = Service(kafka_bootstrap, names, group, tmp_path, workers=3, tag="base")
    # ~30 s: the extra service's start, its rebalance and leave happen while input still flows
    tail = trickle(kafka_bootstrap, names.transactions, inputs, inputs.records[split:], tps=1000)
    extra = None
    try:
        base.wait_workers(3)
        wait_first_commit(kafka_bootstrap, group, names.transactions, base)
        tail.start()
        # A second supervisor in the same group (another instance on this host, or another host).
        extra = Service(kafka_bootstrap, names, group, tmp_path, workers=2, tag="extra")
        extra.wait_workers(2)
        deadline = time.monotonic() + 60
        while not extra.busy_pids():
            assert time.monotonic() < deadline, f"added workers never got partitions:\n{extra.tail()}"
            time.sleep(0.2)
        time.sleep(1.5)
        assert tail.is_alive(), "the input ended before the extra service left: its leaving moved no work"
        before_leave = len(base.log_path.read_text())
        assert extra.stop(timeout=45) == 0, extra.tail()   # remove them again, mid-run
        tail.join()
        wait_drained(kafka_bootstrap, group, names.transactions, timeout=180, service=base)
        assert base.stop() == 0, base.tail()
    finally:
        finish(tail, base, extra)
    # the extra service's partitions came back to the base service after it left
    assert re.search(r": assigned \[\d", base.log_path.read_text()[before_leave:]), \
        "no partition came back after the extra service left"
    v = verify(kafka_bootstrap, names, inputs)
    print(v)
    assert v.exactly_once(), v


def test_missing_topics_stop_the_service_at_start_up(kafka_bootstrap, tmp_path):
    """Topics missing is a start-up error: one `error:` line and exit 1 before any worker
    starts, instead of workers restarted in a loop."""
    from core.topics import TopicNames

    names = TopicNames.namespaced(f"missing-{uuid.uuid4().hex[:6]}")
    svc = Service(kafka_bootstrap, names, "g-missing", tmp_path, workers=1, tag="failing")
    code = svc.proc.wait(120)
    log = svc.log_path.read_text()
    assert code == 1, log
    # every missing topic in the one line, the card-state changelog too (state is on by default)
    assert log.strip().splitlines()[-1] == (f"error: topic(s) {', '.join(names.every())} do not exist on "
                                            f"{kafka_bootstrap} (create them with `bench topics create --namespace "
                                            f"{names.transactions.removesuffix('.transactions')}`)")
    assert "worker 0 started" not in log and "Traceback" not in log


def test_missing_topics_are_a_config_error_of_an_embedded_consumer(kafka_bootstrap, scorer):
    from core.errors import ConfigError
    from core.topics import TopicNames

    names = TopicNames.namespaced(f"missing-{uuid.uuid4().hex[:6]}")
    config = ScoringConfig(bootstrap_servers=kafka_bootstrap, topics=names, group_id="g-missing", stats_interval_s=0)
    with pytest.raises(ConfigError, match=rf"topic\(s\) {', '.join(names.every())} do not exist on "):
        ScoringConsumer(config, scorer).run()


def test_a_zombie_with_the_same_slot_is_fenced_and_stops(kafka_bootstrap, fresh_topics, scorer):
    """Two processes claiming one worker slot: the newer one fences the older, which must
    stop with PipelineError instead of carrying on (its writes could no longer commit)."""
    from core.errors import PipelineError

    names = fresh_topics("fence")
    inputs = make_inputs(4000, 0, seed=3)
    group = f"fence-{uuid.uuid4().hex[:6]}"
    config = ScoringConfig(bootstrap_servers=kafka_bootstrap, topics=names, group_id=group,
                           transactional_id_prefix=group, batch_max_records=200, stats_interval_s=0)
    errors: dict[str, BaseException] = {}

    def run(name, consumer):
        try:
            consumer.run()
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion below
            errors[name] = exc

    old = ScoringConsumer(config, scorer, slot=0, metrics=LoopMetrics(registry=CollectorRegistry()))
    old_thread = threading.Thread(target=run, args=("old", old))
    old_thread.start()
    produce_inputs(kafka_bootstrap, names.transactions, inputs, inputs.records[:2000])
    deadline = time.monotonic() + 60
    while old.metrics.snapshot().processed < 2000:
        assert time.monotonic() < deadline and old_thread.is_alive(), errors
        time.sleep(0.1)
    new = ScoringConsumer(config, scorer, slot=0, metrics=LoopMetrics(registry=CollectorRegistry()))
    new_thread = threading.Thread(target=run, args=("new", new))
    new_thread.start()
    try:
        produce_inputs(kafka_bootstrap, names.transactions, inputs, inputs.records[2000:])
        old_thread.join(60)
        assert not old_thread.is_alive(), "the fenced consumer kept running"
        assert isinstance(errors.get("old"), PipelineError), errors
        assert is_fenced(kafka_error_of(errors["old"])), errors   # not any other reason to stop
        print(f"old consumer stopped with: {errors['old']}")
        wait_drained(kafka_bootstrap, group, names.transactions, timeout=90)
    finally:
        new.stop()
        old.stop()
        new_thread.join(30)
    assert "new" not in errors, errors
    v = verify(kafka_bootstrap, names, inputs)
    assert v.exactly_once(), v


def test_a_bad_record_near_the_size_limit_is_dead_lettered_cut_to_fit(kafka_bootstrap, fresh_topics, scorer):
    """A 1,000,000-byte bad record (the broker takes up to ~1 MiB) no longer fits the scorer's
    producer once the dead-letter headers are added: it is cut, says its length, and the
    records around it are scored without one aborted transaction."""
    from core.routing import H_TRUNCATED_FROM

    names = fresh_topics("bigdead")
    valid = make_inputs(20, 0, seed=5)
    big = b"x" * 1_000_000
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 1_040_000,
                         "enable.idempotence": True})
    big_offset = []
    for i, (key, value, _) in enumerate(valid.records):
        producer.produce(names.transactions, value, key, partition=0)
        if i == 9:
            producer.produce(names.transactions, big, b"big", partition=0,
                             on_delivery=lambda err, msg: big_offset.append((err, msg.offset())))
    assert producer.flush(30) == 0
    assert len(big_offset) == 1 and big_offset[0][0] is None

    snap = _score_until_drained(kafka_bootstrap, names, scorer, "bigdead")
    assert (snap.deadletters, snap.processed, snap.aborts) == (1, 20, 0), snap
    (dead,) = read_all(kafka_bootstrap, names.deadletter, expect=1)
    h = dict(dead.headers())
    assert h[H_TRUNCATED_FROM] == b"1000000" and int(h[H_SOURCE_OFFSET]) == big_offset[0][1]
    assert 900_000 < len(dead.value()) < 1_000_000 and big.startswith(dead.value())
    assert len(read_all(kafka_bootstrap, names.scores, expect=20)) == 20
