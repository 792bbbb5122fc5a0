"""Input deleted between a card-state snapshot and a valid committed offset, on the real broker.

A partition's state is restored as the changelog at its last marker S plus a replay of
`transactions` from S to the committed offset X (core.cardstate). If retention or DeleteRecords
removed input in [S, X) while X itself is still valid, that replay cannot rebuild the state the
committed scores came from. Under offset_reset refuse (the default) that partition is held
(core.stateholds): paused and retried with backoff, an error line naming the lost range at each
try, the fraudstream_state_held_partitions gauge at 1, nothing of it scored, while the worker
goes on scoring its other partitions (a stopped worker would pass the partition on to the next
worker, which would stop too). With earliest (the operator's choice) it replays what is left
and logs what is gone (the other side of the same branch; tests/kafka/test_offset_reset.py
covers a committed offset that is itself gone).
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter

import msgspec
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from core.config import ScoringConfig
from core.snapshot import MARKER_KEY, decode_marker
from tests.kafka.eos_harness import (InProcess, Service, committed_offsets, free_port, make_inputs, produce_inputs,
                                     wait_drained)
from tests.kafka.kafka_io import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

FIRST, LATER = 300, 100
# One snapshot per partition, in its first transaction: the replay then starts well before X.
# Dynamic membership: a stopped in-process member must not hold partition 0 for its session.
SETTINGS = dict(batch_max_records=50, state_snapshot_s=3600.0, static_membership=False)
OTHER = 100   # records of partition 1 before and after: its scoring must go on


def _last_marker(bootstrap: str, topic: str) -> int:
    markers = [(m.offset(), decode_marker(m.value())) for m in read_all(bootstrap, topic, idle_s=1.0)
               if m.partition() == 0 and m.key() == MARKER_KEY]
    assert markers, "no snapshot marker in the changelog"
    return max(markers)[1].offset


def _scored_ids(bootstrap: str, topic: str) -> Counter:
    decode = msgspec.json.Decoder().decode
    return Counter(decode(m.value())["transaction_id"] for m in read_all(bootstrap, topic, idle_s=2.0))


def _ids(records) -> set[str]:
    return {msgspec.json.decode(value)["transaction_id"] for _, value, _ in records}


def _slot_metrics(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def test_input_deleted_after_the_snapshot_holds_that_partition_and_scores_the_others(
        kafka_bootstrap, fresh_topics, tmp_path, caplog):
    names = fresh_topics("lost")
    caplog.set_level(logging.INFO)
    data = make_inputs(FIRST + LATER, 0, seed=47, n_cards=30, span_s=3600.0)
    first, later = data.records[:FIRST], data.records[FIRST:]
    other = make_inputs(2 * OTHER, 0, seed=48, n_cards=30, span_s=3600.0, id_offset=10_000, card_offset=1_000)
    group = f"lost-{uuid.uuid4().hex[:6]}"
    src = names.transactions

    # 1. Scored with state: one snapshot at S (the first transaction), committed offset X.
    produce_inputs(kafka_bootstrap, src, data, first, partition=0)
    produce_inputs(kafka_bootstrap, src, other, other.records[:OTHER], partition=1)
    score_all(kafka_bootstrap, names, group, FIRST + OTHER)
    x = committed_offsets(kafka_bootstrap, group, src, [0])[0]
    s = _last_marker(kafka_bootstrap, names.state)
    assert x == FIRST and 0 < s < x - 1, (s, x)

    # 2. While the group is away: input in [S, D) deleted, X still valid; new input arrives.
    d = (s + x) // 2 + 1
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.delete_records([TopicPartition(src, 0, d)]).values():
        future.result(30)
    produce_inputs(kafka_bootstrap, src, data, later, partition=0)
    produce_inputs(kafka_bootstrap, src, other, other.records[OTHER:], partition=1)
    lost = f"{src}[0] {s}..{d - 1}, scored after the card-state snapshot, is gone"
    print(f"snapshot S={s}, deleted below D={d}, committed X={x}: {lost}")

    # 3. A restart under refuse (the default): partition 0 held and retried, partition 1 scored.
    assert ScoringConfig().offset_reset == "refuse"
    held = held_restart(kafka_bootstrap, names, group, caplog, tries=3)
    assert len(held) >= 3 and all(lost in line for line in held), held
    assert [re.search(r"next try in (\d+) s", line)[1] for line in held[:3]] == ["1", "2", "4"], held

    # 4. The service: the slot stays up, the gauge says one partition is held, the log says why.
    port = free_port()
    svc = Service(kafka_bootstrap, names, group, tmp_path, workers=1,
                  extra=("--metrics-port", str(port), "--snapshot-interval", "3600"))
    try:
        wait_held_and_up(svc, port)
        assert svc.stop() == 0, svc.tail()
    finally:
        if svc.proc.poll() is None:
            svc.stop()
    log = svc.log_path.read_text(errors="replace")
    assert lost in log and "held (paused" in log and "died with" not in log, svc.tail()

    # Nothing of partition 0 was scored after the deletion, and its committed offset did not
    # move; partition 1 was scored all along, each record once.
    scored = _scored_ids(kafka_bootstrap, names.scores)
    assert set(scored) == _ids(first) | _ids(other.records) and max(scored.values()) == 1, len(scored)
    assert committed_offsets(kafka_bootstrap, group, src, [0])[0] == x

    # 5. The operator chooses to lose that input: the replay starts at D and says what is gone.
    caplog.clear()
    scoring = InProcess(kafka_bootstrap, names, group, offset_reset="earliest", **SETTINGS)
    try:   # the service's static member holds partition 0 until its session (30 s) expires
        scoring.wait_processed(LATER, timeout=120)
        wait_drained(kafka_bootstrap, group, src, timeout=60)
    finally:
        scoring.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and lost in errors[0] and "(offset_reset earliest)" in errors[0], errors
    replayed = [r.getMessage() for r in caplog.records if f"replayed {src}[0] from {s} to {x}:" in r.getMessage()]
    assert replayed and f": {x - d} records in " in replayed[0], replayed
    scored = _scored_ids(kafka_bootstrap, names.scores)
    assert set(scored) == _ids(data.records) | _ids(other.records) and max(scored.values()) == 1, len(scored)


def score_all(bootstrap: str, names, group: str, n: int, **settings) -> None:
    """Score until `n` records are processed and the group has committed them all."""
    scoring = InProcess(bootstrap, names, group, **{**SETTINGS, **settings})
    try:
        scoring.wait_processed(n, timeout=120)
        wait_drained(bootstrap, group, names.transactions, timeout=60)
    finally:
        scoring.stop()


def held_restart(bootstrap: str, names, group: str, caplog, tries: int) -> list[str]:
    """A restart under refuse with partition 0's state not rebuildable: partition 1's OTHER new
    records are scored, nothing of partition 0 while it is held and retried `tries` times; the
    error lines of the holds."""
    caplog.clear()
    restart = InProcess(bootstrap, names, group, **SETTINGS)
    try:
        restart.wait_processed(OTHER, timeout=90)
        deadline = time.monotonic() + 30
        while len(_held_lines(caplog)) < tries and time.monotonic() < deadline:
            time.sleep(0.2)
        assert restart.thread.is_alive() and not restart.errors, restart.errors
        assert restart.metrics.snapshot().processed == OTHER     # nothing of partition 0
    finally:
        restart.stop()
    return _held_lines(caplog)


def wait_held_and_up(svc: Service, port: int, timeout: float = 120.0) -> str:
    """/metrics of a one-worker service once it says one partition is held and its slot is up."""
    deadline = time.monotonic() + timeout
    metrics = ""
    while not re.search(r"^fraudstream_state_held_partitions 1\.0$", metrics, re.M):
        assert time.monotonic() < deadline and svc.proc.poll() is None, (metrics, svc.tail())
        time.sleep(0.5)
        try:
            metrics = _slot_metrics(port)
        except OSError:
            metrics = ""
    assert re.search(r'^fraudstream_slot_state\{slot="0",state="up"\} 1\.0$', metrics, re.M), metrics
    # the slot is up, yet the service is not all there: /healthz says so (it said ok before)
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
    doc = json.loads(answer.value.read())
    assert answer.value.code == 503 and doc["up"] == doc["slots"] == 1, doc
    assert doc["paused_partitions"] == {"card_state_held": 1, "offset_reset_refused": 0}, doc
    return metrics


def _held_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "held (paused" in r.getMessage()]
