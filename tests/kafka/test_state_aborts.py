"""The per-card state through aborted transactions, on a real broker. A scoring process fails
some of its transactions at produce and at commit (core.faults); each abort drops the state of
the batch's partitions, which had already applied the batch, and the retry restores them
(changelog, then the input from the snapshot) before it scores again. So no update is applied
twice: for every transaction_id, fraud_score and the `card` features in read_committed
fraud-scores equal those of an undisturbed run on the same input, bit for bit. Keeping the
state through the abort instead counts the retried batch twice (it failed so)."""

from __future__ import annotations

import logging
import uuid

import msgspec
import pytest

from tests.kafka.eos_harness import InProcess, make_inputs, produce_inputs, verify, wait_drained
from tests.kafka.kafka_io import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

N_VALID = 6000
# few cards, each seen often within the windows: a batch applied twice shows in its counts
SYNTH = {"fraud_rate": 0.03, "n_cards": 300, "card_skew": 0.8, "span_s": 3600.0}
SETTINGS = {"batch_max_records": 100, "state_snapshot_s": 0.5}   # ~60 batches: ~11 aborts at 10 %


def _run(bootstrap, fresh_topics, inputs, monkeypatch, caplog, faults: str | None):
    if faults:
        monkeypatch.setenv("FRAUDSTREAM_FAULTS", faults)
    else:
        monkeypatch.delenv("FRAUDSTREAM_FAULTS", raising=False)
    names = fresh_topics("aborts" if faults else "calm")
    produce_inputs(bootstrap, names.transactions, inputs)
    group = f"aborts-{uuid.uuid4().hex[:6]}"
    caplog.clear()
    run = InProcess(bootstrap, names, group, **SETTINGS)
    try:
        wait_drained(bootstrap, group, names.transactions, timeout=180)
    finally:
        run.stop()
    said = [r.getMessage() for r in caplog.records]
    verdict = verify(bootstrap, names, inputs)
    assert verdict.exactly_once(), verdict
    decode = msgspec.json.Decoder().decode
    scores = {}
    for m in read_all(bootstrap, names.scores, expect=N_VALID, idle_s=2.0):
        event = decode(m.value())
        scores[event["transaction_id"]] = (event["fraud_score"], event["card"])
    return scores, said, run.metrics.snapshot()


def test_an_aborted_batch_is_never_counted_twice_in_the_card_state(kafka_bootstrap, fresh_topics, monkeypatch,
                                                                   caplog):
    caplog.set_level(logging.INFO)
    inputs = make_inputs(N_VALID, 0, seed=77, **SYNTH)
    calm, _, _ = _run(kafka_bootstrap, fresh_topics, inputs, monkeypatch, caplog, None)
    stormy, said, snap = _run(kafka_bootstrap, fresh_topics, inputs, monkeypatch, caplog,
                              "produce:0.1,commit:0.1")
    injected = [m for m in said if "aborting transaction" in m and "injected" in m]
    restores = [m for m in said if ": restored " in m]
    print(f"{snap.aborts} aborts ({len(injected)} injected), {len(restores)} restores")
    assert snap.aborts >= 3 and len(injected) == snap.aborts, said[-20:]
    assert len(restores) > 6 + 1, restores   # beyond each partition's first: restores after aborts   # beyond each partition's first: restores after aborts
    assert set(calm) == set(stormy) == set(inputs.valid_ids)
    differ = [t for t in calm if calm[t] != stormy[t]]
    assert not differ, f"{len(differ)} differ, e.g. {[(t, calm[t], stormy[t]) for t in differ[:3]]}"
    # the features depend on history: a run that ignored state would not match
    assert sum(1 for _, card in calm.values() if card["tx_24h"] > 1) > N_VALID // 2


def test_ten_aborts_in_a_row_stop_the_scorer_with_nothing_committed(kafka_bootstrap, fresh_topics, monkeypatch):
    """A transaction that can never commit is not retried for ever: the tenth abort in a row
    stops run() with a PipelineError saying so (the service's supervisor then restarts the
    worker with back-off), and nothing of the batch is committed."""
    from core.errors import PipelineError

    monkeypatch.setenv("FRAUDSTREAM_FAULTS", "commit:1")   # every commit fails
    names = fresh_topics("stuck")
    inputs = make_inputs(50, 0, seed=78)
    produce_inputs(kafka_bootstrap, names.transactions, inputs)
    run = InProcess(kafka_bootstrap, names, f"stuck-{uuid.uuid4().hex[:6]}")
    run.thread.join(120)
    assert not run.thread.is_alive()
    assert len(run.errors) == 1 and isinstance(run.errors[0], PipelineError), run.errors
    assert "10 transactions aborted in a row; last: " in str(run.errors[0]), run.errors
    assert "injected commit fault" in str(run.errors[0]), run.errors
    assert run.metrics.snapshot().aborts == 10 and run.metrics.snapshot().processed == 0
    assert read_all(kafka_bootstrap, names.scores, idle_s=1.0) == []
