"""Hot-path micro-benchmarks: the per-message baseline, score_batch, and each stage alone.

    .venv/bin/pytest tests/perf/test_hotpath.py --benchmark-only
"""

import pytest

from core.decode import decode_batch
from tests.perf.perevent import BATCH_SIZES, EVENTS, chunks, per_event

STAGES = ("decode", "features", "predict", "encode")


def _events(batch_size: int) -> int:
    return 1024 if batch_size == 1 else EVENTS  # batch 1 is ~100x slower per event


def test_seed_per_message(benchmark, seed_path, payloads):
    values = payloads[:200]
    score = seed_path.score

    def run():
        for value in values:
            score(value)

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    per_event(benchmark, len(values))


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_score_batch(benchmark, scorer, payloads, batch_size):
    events = _events(batch_size)
    batches = chunks(payloads, batch_size, events)
    score_batch = scorer.score_batch

    def run():
        for batch in batches:
            score_batch(batch)

    benchmark.pedantic(run, rounds=7, warmup_rounds=1)
    per_event(benchmark, events)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_stage(benchmark, scorer, payloads, batch_size, stage):
    events = _events(batch_size)
    batches = chunks(payloads, batch_size, events)
    decoded = [decode_batch(b) for b in batches]
    matrices = [scorer.features(d) for d in decoded]
    scores = [scorer.model.predict(x) for x in matrices]
    predict, classify = scorer.model.predict, scorer.model.risk.classify
    if stage == "decode":
        def run():
            for b in batches:
                decode_batch(b)
    elif stage == "features":
        def run():
            for d in decoded:
                scorer.features(d)
    elif stage == "predict":
        def run():
            for x in matrices:
                classify(predict(x))
    else:  # classify, quantize, splice, alerts: everything after predict
        def run():
            for b, d, s in zip(batches, decoded, scores):
                scorer.encode(b, d, s, 0.0)

    benchmark.pedantic(run, rounds=7, warmup_rounds=1)
    per_event(benchmark, events)
