"""CI gate: the hot path against reference paths, as ratios measured in the same run.

Absolute times drift between machines and with the load of a shared one; a ratio of two paths
timed in one process, round for round (the reference runs in pytest-benchmark's untimed
`setup` before every timed round), drifts far less. Floors sit well below what this machine
measured (tests/perf/README.md), so only a real regression fails them:

    .venv/bin/pytest tests/perf/test_ratio_gate.py --benchmark-only -p no:cacheprovider

Environment overrides: FRAUDSTREAM_RATIO_FLOOR (vs the seed's per-message path, default 100),
FRAUDSTREAM_JSON_RATIO_FLOOR (vs json.loads+json.dumps, default 8),
FRAUDSTREAM_IO_RATIO_FLOOR (decode+features+encode without the model vs json, default 12),
FRAUDSTREAM_STATE_MAX_US (what the per-card state may add to score_batch, default 1.0 µs/event).
"""

import json
import os
import time

import numpy as np

from core import Scorer
from core.cardstate import batch_velocity
from core.decode import decode_batch
from core.velocity import CardStore
from tests.core.velocity_ref import stateless_model_path
from tests.perf.perevent import chunks, per_event

RATIO_FLOOR = float(os.environ.get("FRAUDSTREAM_RATIO_FLOOR", "100"))
JSON_RATIO_FLOOR = float(os.environ.get("FRAUDSTREAM_JSON_RATIO_FLOOR", "8"))
IO_RATIO_FLOOR = float(os.environ.get("FRAUDSTREAM_IO_RATIO_FLOOR", "12"))
STATE_MAX_US = float(os.environ.get("FRAUDSTREAM_STATE_MAX_US", "1.0"))
BATCH = 1024
EVENTS = 4 * BATCH
ROUNDS = 7


class Reference:
    """Times one round of fn over values per call; keeps the best µs/event."""

    def __init__(self, fn, values):
        self.fn, self.values, self.best = fn, values, float("inf")

    def __call__(self):
        fn = self.fn
        t0 = time.perf_counter()
        for value in self.values:
            fn(value)
        self.best = min(self.best, (time.perf_counter() - t0) / len(self.values) * 1e6)


def _json_roundtrip(value: bytes) -> bytes:
    return json.dumps(json.loads(value)).encode()


def _gate(benchmark, name: str, reference: Reference, floor: float) -> None:
    ours, _ = per_event(benchmark, EVENTS)
    ratio = reference.best / ours
    benchmark.extra_info[f"{name}_us_per_event"] = round(reference.best, 3)
    benchmark.extra_info["ratio"] = round(ratio, 2)
    print(f"\n{benchmark.name}: {ours:.2f} us/event, {name} {reference.best:.2f} us/event: "
          f"{ratio:.1f}x (floor {floor:g}x)")
    assert ratio >= floor, (
        f"{benchmark.name}: only {ratio:.1f}x faster than {name} ({ours:.2f} vs "
        f"{reference.best:.2f} us/event); the floor is {floor:g}x")


def test_score_batch_vs_seed_per_message(benchmark, scorer, seed_path, payloads):
    batches = chunks(payloads, BATCH, EVENTS)
    reference = Reference(seed_path.score, payloads[:100])

    def run():
        for batch in batches:
            scorer.score_batch(batch)

    benchmark.pedantic(run, setup=reference, rounds=ROUNDS, warmup_rounds=1)
    _gate(benchmark, "seed_per_message", reference, RATIO_FLOOR)


def test_score_batch_vs_json_roundtrip(benchmark, scorer, payloads):
    batches = chunks(payloads, BATCH, EVENTS)
    reference = Reference(_json_roundtrip, payloads[:1024])

    def run():
        for batch in batches:
            scorer.score_batch(batch)

    benchmark.pedantic(run, setup=reference, rounds=ROUNDS, warmup_rounds=1)
    _gate(benchmark, "json_roundtrip", reference, JSON_RATIO_FLOOR)


def test_decode_features_encode_vs_json_roundtrip(benchmark, scorer, payloads):
    """Everything score_batch does except the trees: the part this code owns, model-agnostic."""
    batches = chunks(payloads, BATCH, EVENTS)
    scores = [scorer.model.predict(scorer.features(decode_batch(b))) for b in batches]
    reference = Reference(_json_roundtrip, payloads[:1024])

    def run():
        for batch, s in zip(batches, scores):
            d = decode_batch(batch)
            scorer.encode(batch, d, scorer.features(d), s, 0.0)

    benchmark.pedantic(run, setup=reference, rounds=ROUNDS, warmup_rounds=1)
    _gate(benchmark, "json_roundtrip", reference, IO_RATIO_FLOOR)


def test_score_batch_with_state_vs_stateless(benchmark, payloads):
    """The per-card state (issue #19) may add at most STATE_MAX_US per event to score_batch
    at batch 1024: the same batches scored stateless in the untimed setup of every round,
    both with the stateless model (the cost of the state, not of bigger trees)."""
    scorer = Scorer.load(stateless_model_path())
    batches = chunks(payloads, BATCH, EVENTS)
    keys = [[json.loads(v)["card_hash"].encode() for v in b] for b in batches]
    parts = np.zeros(BATCH, dtype=np.int64)
    best = [float("inf")]

    def stateless():
        t0 = time.perf_counter()
        for batch in batches:
            scorer.score_batch(batch)
        best[0] = min(best[0], (time.perf_counter() - t0) / EVENTS * 1e6)

    def run():
        stores = {0: CardStore()}   # a fresh state each round: the same events, first seen
        for batch, k in zip(batches, keys):
            scorer.score_batch(batch, batch_velocity(stores, parts, k))

    benchmark.pedantic(run, setup=stateless, rounds=ROUNDS, warmup_rounds=1)
    ours, _ = per_event(benchmark, EVENTS)
    added = ours - best[0]
    benchmark.extra_info.update(stateless_us_per_event=round(best[0], 3), added_us=round(added, 3))
    print(f"\n{benchmark.name}: {ours:.2f} us/event with state, {best[0]:.2f} stateless: "
          f"+{added:.2f} us/event (at most {STATE_MAX_US:g})")
    assert added <= STATE_MAX_US, (
        f"the per-card state adds {added:.2f} us/event to score_batch ({ours:.2f} vs "
        f"{best[0]:.2f}); at most {STATE_MAX_US:g} allowed")
