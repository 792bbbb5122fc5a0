"""Chaos: a hot key and keyless records must not stop the per-card state.

52,000 transactions on one card within 15 h, plus 2,000 records without a key, go to
`transactions`; the service scores them with state on and a snapshot in every transaction.
Before the per-card bound, that card's changelog value grew to 37 + 20 x 52,000 = 1,040,037
bytes, over the producer's 1,000,000-byte limit: every snapshot aborted its transaction, the
worker stopped after 10 aborts in a row, restarted, and its partitions never drained (and all
keyless records were one card, b""). Now the card keeps MAX_CARD_EVENTS events, keyless records
are no card, and the run is exactly once with no abort and no restart.
"""

from __future__ import annotations

import time
import uuid

import msgspec
import pytest

from core.snapshot import MARKER_KEY
from core.velocity import MAX_CARD_EVENTS, MAX_STATE_VALUE_BYTES
from tests.kafka.eos_harness import Inputs, Service, produce_inputs, verify, wait_drained
from tests.kafka.kafka_io import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

N_HOT = 52_000       # > (1,000,000 - 37) / 20 = 49,998: the value the bound prevents is too large
N_KEYLESS = 2_000


def _inputs(seed: int) -> tuple[Inputs, bytes]:
    """The hot card's transactions with the keyless ones spread among them (in time order each)."""
    from bench.load.synth import generate

    span = {"span_s": 15 * 3600.0, "fraud_rate": 0.0}
    hot = generate(N_HOT, seed=seed, n_cards=1, **span)
    keyless = generate(N_KEYLESS, seed=seed + 1, id_offset=N_HOT, n_cards=500, **span)
    key = hot.card_hash[0].encode()
    records: list[tuple[bytes | None, bytes | None, int]] = [(key, v, i) for i, v in enumerate(hot.payloads())]
    step = N_HOT // N_KEYLESS
    for j, value in enumerate(keyless.payloads()):
        records.insert(j * (step + 1), (None, value, N_HOT + j))
    ids = [str(t) for t in hot.transaction_id] + [str(t) for t in keyless.transaction_id]
    return Inputs(records, ids, set()), key


def test_a_hot_card_and_keyless_records_are_scored_exactly_once_without_an_abort(kafka_bootstrap, fresh_topics,
                                                                                 tmp_path):
    names = fresh_topics("hotcard")
    inputs, hot_key = _inputs(seed=23)
    assert len({hot_key for k, _, _ in inputs.records if k}) == 1
    produce_inputs(kafka_bootstrap, names.transactions, inputs)
    group = f"hotcard-{uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    with Service(kafka_bootstrap, names, group, tmp_path, workers=2, extra=("--snapshot-interval", "0")) as service:
        wait_drained(kafka_bootstrap, group, names.transactions, timeout=180, service=service)   # up all along
        print(f"drained in {time.monotonic() - t0:.1f} s")
        assert service.stop() == 0, service.tail()
    log = service.log_path.read_text(errors="replace")
    assert "died with" not in log and "restarting" not in log, service.tail()            # no worker restarted
    assert "aborting transaction" not in log, service.tail()                             # no abort, let alone a loop
    assert log.count("committed the first batch") >= 1, service.tail()

    v = verify(kafka_bootstrap, names, inputs)
    print(v)
    assert v.exactly_once(), v
    assert v.scored == N_HOT + N_KEYLESS, v
    decode = msgspec.json.Decoder().decode
    tx_24h = {}
    for m in read_all(kafka_bootstrap, names.scores, expect=N_HOT + N_KEYLESS):
        tx_24h.setdefault(m.key(), []).append(decode(m.value())["card"]["tx_24h"])
    assert set(tx_24h[None]) == {1}                                  # no card, no history
    assert max(tx_24h[hot_key]) == MAX_CARD_EVENTS + 1               # full: MAX earlier events
    assert tx_24h[hot_key].count(MAX_CARD_EVENTS + 1) == N_HOT - MAX_CARD_EVENTS

    state = read_all(kafka_bootstrap, names.state, idle_s=1.0)
    keys = {m.key() for m in state}
    assert None not in keys and b"" not in keys and keys == {hot_key, MARKER_KEY}
    sizes = [len(m.value()) for m in state if m.key() == hot_key]
    assert max(sizes) == sizes[-1] == MAX_STATE_VALUE_BYTES
