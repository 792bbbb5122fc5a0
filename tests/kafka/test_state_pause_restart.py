"""Traffic resuming after a pause of more than a day, with a restart in the middle of the
transactions that tell it, on a real broker. The 100th transaction in a row more than 24 h
ahead of the partition's time moves the partition's time on (the 99 before are bad clocks:
scored at their card's latest time, changing nothing), and every card starts afresh. How many
have come so far is in each snapshot marker, so a scorer that restores the partition after 60
of them moves on at the same transaction as one that ran through: every score and card feature
is identical. (Restoring the count as 0 would move on 60 transactions later.)"""

from __future__ import annotations

import uuid

import msgspec
import pytest

from tests.kafka.eos_harness import InProcess, Inputs, make_inputs, produce_inputs, wait_drained
from tests.kafka.kafka_io import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

NORMAL, AHEAD, BEFORE_RESTART = 300, 150, 60
MOVES_ON = NORMAL + 99   # the index of the 100th transaction ahead


def _inputs() -> Inputs:
    base = make_inputs(NORMAL + AHEAD, 0, seed=79, n_cards=20, span_s=3600.0)   # one hour of 2026-01-01
    records = [(key, value if i < NORMAL else value.replace(b'"timestamp":"2026-01-01', b'"timestamp":"2026-01-03'),
                seq) for i, (key, value, seq) in enumerate(base.records)]
    assert all(b'"2026-01-03' in value for _, value, _ in records[NORMAL:])
    return Inputs(records, base.valid_ids, set())


def _scores(bootstrap, names) -> dict[str, tuple]:
    decode = msgspec.json.Decoder().decode
    out = {}
    for m in read_all(bootstrap, names.scores, expect=NORMAL + AHEAD, idle_s=2.0):
        event = decode(m.value())
        out[event["transaction_id"]] = (event["fraud_score"], event["card"])
    return out


def test_a_restart_among_the_transactions_after_a_pause_moves_on_at_the_same_one(kafka_bootstrap, fresh_topics):
    inputs = _inputs()
    settings = {"state_snapshot_s": 0.0, "batch_max_records": 20}   # a marker in every transaction

    through = fresh_topics("pause")
    produce_inputs(kafka_bootstrap, through.transactions, inputs, partition=0)
    group = f"pause-{uuid.uuid4().hex[:6]}"
    run = InProcess(kafka_bootstrap, through, group, **settings)
    wait_drained(kafka_bootstrap, group, through.transactions, timeout=120)
    run.stop()

    restarted = fresh_topics("pauserst")
    group = f"pauserst-{uuid.uuid4().hex[:6]}"
    split = NORMAL + BEFORE_RESTART
    produce_inputs(kafka_bootstrap, restarted.transactions, inputs, inputs.records[:split], partition=0)
    first = InProcess(kafka_bootstrap, restarted, group, **settings)
    first.wait_processed(split)
    first.stop()
    produce_inputs(kafka_bootstrap, restarted.transactions, inputs, inputs.records[split:], partition=0)
    second = InProcess(kafka_bootstrap, restarted, group, **settings)
    wait_drained(kafka_bootstrap, group, restarted.transactions, timeout=120)
    second.stop()

    a, b = _scores(kafka_bootstrap, through), _scores(kafka_bootstrap, restarted)
    assert set(a) == set(b) == set(inputs.valid_ids)
    # the rule took effect where the docs say: the first card without history is the 100th ahead
    fresh = [i for i, tid in enumerate(inputs.valid_ids) if i >= NORMAL and a[tid][1]["secs_since_prev"] is None]
    assert fresh and fresh[0] == MOVES_ON, fresh[:5]
    differ = [t for t in a if a[t] != b[t]]
    assert not differ, f"{len(differ)} differ, e.g. {[(t, a[t], b[t]) for t in differ[:2]]}"
