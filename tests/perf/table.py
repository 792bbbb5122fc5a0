"""The hot-path table in one interleaved run: µs/event per stage and total at each batch size,
and the ratio to the per-message path.

pytest-benchmark runs its benchmarks one after the other, so on a shared machine a load spike
can land on one stage and not the others. Here every measurement takes one round in turn,
`--rounds` times, and the median round of each is reported, score_batch with its spread. The
model is the stateless one: score_batch of a model with velocity features needs the per-card
state of a partition (its cost is the ratio gate's, tests/perf/test_ratio_gate.py).

    .venv/bin/python -m tests.perf.table [--rounds 9] [--markdown]
"""

import argparse
import statistics
import time

from bench.load.synth import generate
from core import Scorer
from core.decode import decode_batch
from core.paths import stateless_model_path
from tests.perf.perevent import BATCH_SIZES, EVENTS, SEED, chunks
from tests.perf.seed_path import SeedPath

STAGES = ("decode", "features", "predict", "encode", "score_batch")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measurements(scorer: Scorer, payloads: list[bytes]) -> dict:
    """(batch size, stage) -> (events per round, callable running one round)."""
    predict, classify = scorer.model.predict, scorer.model.risk.classify
    jobs = {}
    for size in BATCH_SIZES:
        events = 1024 if size == 1 else EVENTS
        batches = chunks(payloads, size, events)
        decoded = [decode_batch(b) for b in batches]
        matrices = [scorer.features(d) for d in decoded]
        scores = [predict(x) for x in matrices]
        jobs[size, "decode"] = events, lambda b=batches: [decode_batch(v) for v in b]
        jobs[size, "features"] = events, lambda d=decoded: [scorer.features(v) for v in d]
        jobs[size, "predict"] = events, lambda m=matrices: [classify(predict(x)) for x in m]
        jobs[size, "encode"] = events, lambda b=batches, d=decoded, m=matrices, s=scores: [
            scorer.encode(*args, 0.0) for args in zip(b, d, m, s)]
        jobs[size, "score_batch"] = events, lambda b=batches: [scorer.score_batch(v) for v in b]
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()),
                                     epilog="example: .venv/bin/python -m tests.perf.table --rounds 15 --markdown",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9,
                        help="rounds of every measurement, taken in turn; the median counts")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table instead of text")
    args = parser.parse_args()

    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    print(f"payloads: bench.load.synth.generate({EVENTS}, seed={SEED}); median of {args.rounds} "
          f"interleaved rounds")
    payloads = generate(EVENTS, seed=SEED).payloads()
    scorer = Scorer.load(stateless_model_path())
    seed = SeedPath()
    seed_values = payloads[:100]
    jobs = measurements(scorer, payloads)
    jobs["seed", "per_message"] = len(seed_values), lambda: [seed.score(v) for v in seed_values]
    times = {key: [] for key in jobs}
    for _ in range(args.rounds):
        for key, (events, fn) in jobs.items():
            times[key].append(_timed(fn) / events * 1e6)
    mid = {key: statistics.median(t) for key, t in times.items()}

    seed_us = mid["seed", "per_message"]
    spread = times["seed", "per_message"]
    print(f"model {scorer.model_version} ({scorer.model.backend}); per-message path "
          f"{seed_us:.1f} us/event ({min(spread):.1f}-{max(spread):.1f})")
    header = ["batch"] + [f"{s} us/ev" for s in STAGES] + ["ratio vs per-message"]
    rows = [[str(size)] + [f"{mid[size, s]:.3f}" for s in STAGES[:-1]]
            + [f"{mid[size, 'score_batch']:.3f} ({min(times[size, 'score_batch']):.3f}-"
               f"{max(times[size, 'score_batch']):.3f})"]
            + [f"{seed_us / mid[size, 'score_batch']:.1f}x"] for size in BATCH_SIZES]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        print("  ".join(f"{h:>14s}" for h in header))
        for row in rows:
            print("  ".join(f"{c:>14s}" for c in row))


if __name__ == "__main__":
    main()
