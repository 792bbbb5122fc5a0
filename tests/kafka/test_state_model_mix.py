"""Two models scoring one consumer group, on a real broker: a second service started with
another --model (here the stateless one) takes over partitions whose card state the first
wrote. Each snapshot marker names the model of its writer, so the restore says so: one
warning per partition, naming both models and the group. Not refused: a rolling model upgrade
scores with two models for a while. Before, nothing told the operator."""

from __future__ import annotations

import logging
import uuid

import pytest

from core.paths import stateless_model_path
from core.scorer import Scorer
from tests.kafka.eos_harness import InProcess, make_inputs, produce_inputs, verify

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def test_a_worker_with_another_model_warns_when_it_restores_the_first_ones_state(kafka_bootstrap, fresh_topics,
                                                                                 caplog):
    names = fresh_topics("mix")
    group = f"mix-{uuid.uuid4().hex[:6]}"
    caplog.set_level(logging.INFO)
    first, again = make_inputs(600, 0, seed=81), make_inputs(600, 0, seed=83, id_offset=20_000)
    later = make_inputs(600, 0, seed=82, id_offset=10_000)
    produce_inputs(kafka_bootstrap, names.transactions, first)
    default = InProcess(kafka_bootstrap, names, group)
    default.wait_processed(600)
    default.stop()
    mine = default.consumer.scorer.model_version

    # the same model restoring its own snapshots: silent
    caplog.clear()
    produce_inputs(kafka_bootstrap, names.transactions, again)
    same = InProcess(kafka_bootstrap, names, group)
    same.wait_processed(600)
    same.stop()
    said = [r.getMessage() for r in caplog.records]
    restored = {p for p in range(6) for m in said
                if f"restored {names.state}[{p}]:" in m and "(snapshot at input offset -;" not in m}
    assert restored == set(range(6)), said   # every partition restored from a snapshot of the first run
    assert not [m for m in said if "two models" in m], said

    produce_inputs(kafka_bootstrap, names.transactions, later)
    other = Scorer.load(stateless_model_path())
    assert other.model_version != mine
    second = InProcess(kafka_bootstrap, names, group, scorer=other)
    second.wait_processed(600)
    second.stop()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "two models" in r.getMessage()]
    parts = {p for p in range(6) for w in warned if f"{names.state}[{p}] was last snapshotted" in w}
    assert parts == set(range(6)), warned
    assert all(f"scoring with model {mine}, this one scores with {other.model_version}: two models score group "
               f"{group}" in w for w in warned), warned
    for inputs in (first, again, later):   # every transaction scored once, by one model or the other
        verdict = verify(kafka_bootstrap, names, inputs)
        assert not (verdict.duplicates or verdict.missing or verdict.mispaired) and verdict.unexpected == 1200, verdict
