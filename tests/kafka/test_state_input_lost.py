"""Input deleted between a card-state snapshot and a valid committed offset, on the real broker.

A partition's state is restored as the changelog at its last marker S plus a replay of
`transactions` from S to the committed offset X (core.cardstate). If retention or DeleteRecords
removed input in [S, X) while X itself is still valid, that replay cannot rebuild the state the
committed scores came from. Under offset_reset refuse (the default) the slot stops with a
StateError naming the lost range and scores nothing: the supervisor backs it off and retries,
saying why in its log and on /healthz. With earliest (the operator's choice) it replays what is
left and logs what is gone (the other side of the same branch; tests/kafka/test_offset_reset.py
covers a committed offset that is itself gone).
"""

from __future__ import annotations

import logging
import re
import urllib.request
import uuid
from collections import Counter

import msgspec
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from core.config import ScoringConfig
from core.errors import StateError
from core.snapshot import MARKER_KEY, decode_marker
from tests.kafka.eos_harness import InProcess, Service, committed_offsets, make_inputs, produce_inputs, wait_drained
from tests.kafka.kafka_io import read_all
from tests.kafka.test_service_resilience import _free_port, _wait_health

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

FIRST, LATER = 300, 100
# One snapshot per partition, in its first transaction: the replay then starts well before X.
# Dynamic membership: a stopped in-process member must not hold partition 0 for its session.
SETTINGS = dict(batch_max_records=50, state_snapshot_s=3600.0, static_membership=False)
STATE_EXIT = "exit code 5 (card state cannot be restored)"


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


def test_input_deleted_after_the_snapshot_stops_the_slot_and_scores_nothing(kafka_bootstrap, fresh_topics, tmp_path,
                                                                            caplog):
    names = fresh_topics("lost")
    caplog.set_level(logging.INFO)
    data = make_inputs(FIRST + LATER, 0, seed=47, n_cards=30, span_s=3600.0)
    first, later = data.records[:FIRST], data.records[FIRST:]
    group = f"lost-{uuid.uuid4().hex[:6]}"
    src = names.transactions

    # 1. Scored with state: one snapshot at S (the first transaction), committed offset X.
    produce_inputs(kafka_bootstrap, src, data, first, partition=0)
    scoring = InProcess(kafka_bootstrap, names, group, **SETTINGS)
    try:
        scoring.wait_processed(FIRST)
        wait_drained(kafka_bootstrap, group, src, timeout=60)
    finally:
        scoring.stop()
    x = committed_offsets(kafka_bootstrap, group, src, [0])[0]
    s = _last_marker(kafka_bootstrap, names.state)
    assert x == FIRST and 0 < s < x - 1, (s, x)

    # 2. While the group is away: input in [S, D) deleted, X still valid; new input arrives.
    d = (s + x) // 2 + 1
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.delete_records([TopicPartition(src, 0, d)]).values():
        future.result(30)
    produce_inputs(kafka_bootstrap, src, data, later, partition=0)
    lost = f"{src}[0] {s}..{d - 1}, scored after the card-state snapshot, is gone"
    print(f"snapshot S={s}, deleted below D={d}, committed X={x}: {lost}")

    # 3. A restart under refuse (the default): the slot stops with a StateError naming the range.
    assert ScoringConfig().offset_reset == "refuse"
    restart = InProcess(kafka_bootstrap, names, group, **SETTINGS)
    try:
        restart.thread.join(60)
        assert not restart.thread.is_alive(), f"still running, {restart.metrics.snapshot().processed} scored"
    finally:
        restart.consumer.stop()
        restart.thread.join(30)
    assert len(restart.errors) == 1 and isinstance(restart.errors[0], StateError), restart.errors
    assert lost in str(restart.errors[0]) and "offset_reset: earliest | latest" in str(restart.errors[0])
    assert restart.metrics.snapshot().processed == 0

    # 4. The service: the slot backs off and retries, refusing each time, and says why.
    port = _free_port()
    svc = Service(kafka_bootstrap, names, group, tmp_path, workers=1,
                  extra=("--metrics-port", str(port), "--snapshot-interval", "3600"))
    try:
        doc = _wait_health(port, svc, lambda code, doc: code == 503 and doc["down"] != []   # [] while starting
                           and doc["down"][0]["last_exit"] == STATE_EXIT and doc["down"][0]["failures"] >= 2,
                           timeout=150)
        print(doc)
        assert doc["up"] == 0 and doc["slots"] == 1, doc
        metrics = _slot_metrics(port)
        assert re.search(r'^fraudstream_slot_state\{slot="0",state="up"\} 0\.0$', metrics, re.M), metrics
        assert float(re.search(r'^fraudstream_slot_restarts_total\{slot="0"\} (\S+)$', metrics, re.M)[1]) >= 1
        assert svc.stop() == 0, svc.tail()
    finally:
        if svc.proc.poll() is None:
            svc.stop()
    log = svc.log_path.read_text(errors="replace")
    stops = re.findall(r"ERROR worker 0 stops: (.*)", log)
    assert len(stops) >= 2 and all(lost in line for line in stops), svc.tail()
    died = re.findall(rf"worker 0 \(pid \d+\) died with {re.escape(STATE_EXIT)} after [\d.]+ s: (.*); "
                      r"restarting in ([\d.]+) s", log)
    assert len(died) >= 2 and all(lost in why for why, _ in died), svc.tail()
    assert [float(delay) for _, delay in died[:2]] == [0.25, 0.5], died   # backing off, not a tight loop
    assert "error:" not in log, svc.tail()   # a slot's failure, not the service's

    # Nothing was scored after the deletion, and the committed offset did not move.
    scored = _scored_ids(kafka_bootstrap, names.scores)
    assert set(scored) == _ids(first) and max(scored.values()) == 1, len(scored)
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
    assert set(scored) == _ids(data.records) and max(scored.values()) == 1, len(scored)
