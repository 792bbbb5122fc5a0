"""CI gate: score_batch against the per-message path, as ratios measured in the same run.

Absolute times drift between machines and with the load of a shared one; a ratio of two paths
timed in one process, interleaved, does not. Floors sit well below what this machine measures
(see the HOTPATH report), so only a real regression of the hot path fails them:

    .venv/bin/pytest tests/bench/test_ratio_gate.py --benchmark-only -p no:cacheprovider

FRAUDSTREAM_RATIO_FLOOR / FRAUDSTREAM_JSON_RATIO_FLOOR override the floors.
"""

import json
import os
import time

from tests.bench.perevent import chunks, per_event

# score_batch at batch 1024 vs the seed's per-message path with the same model
RATIO_FLOOR = float(os.environ.get("FRAUDSTREAM_RATIO_FLOOR", "40"))
# ... and vs nothing but json.loads + json.dumps of the same events (no model at all)
JSON_RATIO_FLOOR = float(os.environ.get("FRAUDSTREAM_JSON_RATIO_FLOOR", "2"))
BATCH = 1024
EVENTS = 4 * BATCH
ROUNDS = 5


def _best_per_event(fn, values, rounds: int) -> float:
    """Best-of-rounds µs per event of fn(value) over values."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for value in values:
            fn(value)
        best = min(best, time.perf_counter() - t0)
    return best / len(values) * 1e6


def _score_all(scorer, batches):
    for batch in batches:
        scorer.score_batch(batch)


def _json_roundtrip(value: bytes) -> bytes:
    return json.dumps(json.loads(value)).encode()


def _gate(benchmark, name: str, batch_us: float, other_us: float, floor: float) -> None:
    ratio = other_us / batch_us
    benchmark.extra_info[f"{name}_us_per_event"] = round(other_us, 3)
    benchmark.extra_info[f"ratio_vs_{name}"] = round(ratio, 2)
    print(f"\nscore_batch[{BATCH}] {batch_us:.2f} us/event, {name} {other_us:.2f} us/event: "
          f"{ratio:.1f}x (floor {floor:g}x)")
    assert ratio >= floor, (
        f"score_batch[{BATCH}] is only {ratio:.1f}x faster than {name} "
        f"({batch_us:.2f} vs {other_us:.2f} us/event); the floor is {floor:g}x")


def test_ratio_vs_seed_per_message(benchmark, scorer, seed_path, payloads):
    batches = chunks(payloads, BATCH, EVENTS)
    seed_values = payloads[:150]
    seed_us = _best_per_event(seed_path.score, seed_values, 2)
    benchmark.pedantic(_score_all, args=(scorer, batches), rounds=ROUNDS, warmup_rounds=1)
    seed_us = min(seed_us, _best_per_event(seed_path.score, seed_values, 2))  # interleaved
    batch_us, _ = per_event(benchmark, EVENTS)
    _gate(benchmark, "seed_per_message", batch_us, seed_us, RATIO_FLOOR)


def test_ratio_vs_json_roundtrip(benchmark, scorer, payloads):
    batches = chunks(payloads, BATCH, EVENTS)
    values = payloads[:2048]
    json_us = _best_per_event(_json_roundtrip, values, 3)
    benchmark.pedantic(_score_all, args=(scorer, batches), rounds=ROUNDS, warmup_rounds=1)
    json_us = min(json_us, _best_per_event(_json_roundtrip, values, 3))
    batch_us, _ = per_event(benchmark, EVENTS)
    _gate(benchmark, "json_roundtrip", batch_us, json_us, JSON_RATIO_FLOOR)
