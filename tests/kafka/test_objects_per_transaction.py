"""Scoring keeps no Python object per transaction: a leak on the per-transaction path (a
confluent-kafka call that keeps a reference, a list that only grows) shows as a type whose
count grows with the transactions. Seen: confluent-kafka's describe_topics kept every topic
id (core/topicidleak.py), ~5 per transaction, a worker's memory growing without end.

It counts the objects the garbage collector tracks (containers, and extension types such as
confluent-kafka's Uuid); a leaked str or bytes is not among them, and shows in `bench run`'s
scorer memory instead. Measured here: the most any type grew over 1,300 transactions was 44
(weak references); with the topic-id leak put back, Uuid grew by 6,500."""

from __future__ import annotations

import gc
import uuid
from collections import Counter

import pytest

from tests.kafka.eos_harness import InProcess, make_inputs, produce_inputs

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

WARM = 400        # records scored before counting: clients, caches and the state's arrays settle
MORE = 2_600      # then ~1,300 transactions of at most 2 records each
GREW_LIMIT = 300  # a type that grew by this much over them grew with the transactions


def _census() -> Counter:
    gc.collect()
    return Counter(type(o).__name__ for o in gc.get_objects())


def test_scoring_keeps_no_python_object_per_transaction(kafka_bootstrap, fresh_topics):
    names = fresh_topics("objs")
    data = make_inputs(WARM + MORE, 0, seed=53)
    produce_inputs(kafka_bootstrap, names.transactions, data, data.records[:WARM])
    scoring = InProcess(kafka_bootstrap, names, f"objs-{uuid.uuid4().hex[:6]}", batch_max_records=2)
    try:
        scoring.wait_processed(WARM)
        before, first = _census(), scoring.metrics.snapshot().batches
        produce_inputs(kafka_bootstrap, names.transactions, data, data.records[WARM:])
        scoring.wait_processed(WARM + MORE, timeout=120)
        diff = _census() - before
        grew = {name: n for name, n in diff.items() if n >= GREW_LIMIT}
        transactions = scoring.metrics.snapshot().batches - first
    finally:
        scoring.stop()
    print(f"{transactions:,} transactions; the types that grew most: {diff.most_common(3)}")
    assert transactions >= 4 * GREW_LIMIT, "too few transactions to tell a leak of one object in four"
    assert not grew, f"objects kept over {transactions:,} transactions: {grew}"
