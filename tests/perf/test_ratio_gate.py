"""CI gate: the hot path against reference paths, as ratios measured in the same run.

Absolute times drift between machines and with the load of a shared one; a ratio of two paths
timed in one process, round for round (the reference runs in pytest-benchmark's untimed
`setup` before every timed round), in CPU time, drifts far less: the gate takes the median of
the per-round ratios (class Paired). The floors are per CPU vendor, set so that a hot path
1.5x slower fails and a healthy one passes (the spreads they came from: tests/perf/README.md),
and the outputs of what was timed are checked against the seed's own scores:

    .venv/bin/pytest tests/perf/test_ratio_gate.py --benchmark-only -p no:cacheprovider

Environment overrides: FRAUDSTREAM_RATIO_FLOOR (vs the seed's per-message path),
FRAUDSTREAM_JSON_RATIO_FLOOR (vs json.loads+json.dumps), FRAUDSTREAM_IO_RATIO_FLOOR
(decode+features+encode without the model vs json), FRAUDSTREAM_GATE_ROUNDS (default 25),
FRAUDSTREAM_STATE_MAX_RATIO (score_batch with the per-card state over stateless; default per
CPU vendor: 1.5 Intel, 1.65 AMD).
"""

import json
import os
import statistics
import time

import numpy as np

from core import Scorer
from core.cardbatch import batch_velocity
from core.decode import decode_batch
from core.velocity import CardStore
from tests.core.velocity_ref import stateless_model_path
from tests.perf.perevent import chunks, per_event

BATCH = 1024
EVENTS = 4 * BATCH
ROUNDS = int(os.environ.get("FRAUDSTREAM_GATE_ROUNDS", "25"))
SEED_CHECKED = 200      # outputs compared with the seed's predict_proba (~1 ms each)


def _vendor() -> str:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return "intel"
    return "amd" if "AuthenticAMD" in text else "intel"


# Floors per CPU vendor: above what each measured divided by 1.5 (a hot path 1.5x slower
# fails), below the lowest it measured healthy. Figures and spreads: tests/perf/README.md.
# Intel seed: a clean-clone CI of 2026-12-06 measured 129.8x (rounds 118.7-137.5x) with
# every test green, under the earlier floor of 130. AMD: eight gate runs of 2026-12-06 (a
# clean-clone CI and 7 make bench-gate, quiet) measured seed 120.7-127.3x, json 9.6-10.5x,
# io 12.6-13.5x; the earlier AMD floors (215, 16, 21) came from a wall-clock best-of-7 run
# of 2026-11-28 on older code and failed every one of them.
_FLOORS = {"amd": {"seed": 110.0, "json": 9.0, "io": 11.5},
           "intel": {"seed": 115.0, "json": 9.5, "io": 12.0}}
_ENV = {"seed": "FRAUDSTREAM_RATIO_FLOOR", "json": "FRAUDSTREAM_JSON_RATIO_FLOOR",
        "io": "FRAUDSTREAM_IO_RATIO_FLOOR"}
FLOORS = {k: float(os.environ.get(_ENV[k], v)) for k, v in _FLOORS[_vendor()].items()}
# Ceilings of state/stateless: the issue's +1.0 µs/event over a stateless path of ~2.0 µs of
# CPU is 1.5x on the Intel Xeon (1.34-1.41x measured); AMD is not measured yet and runs the
# numba and compiled-tree parts relatively faster than the dict work of the state (estimate
# ~1.5x there, at +0.5 µs/event): tests/perf/README.md.
_STATE_CEILINGS = {"amd": 1.65, "intel": 1.5}
STATE_MAX_RATIO = float(os.environ.get("FRAUDSTREAM_STATE_MAX_RATIO", _STATE_CEILINGS[_vendor()]))


class Paired:
    """The reference and our path timed round by round, back to back, in CPU time.

    pytest-benchmark calls setup() (the reference: one pass over its values) before every
    round of `timed(work)`; each round gives one ratio of the two, measured within ~0.1 s of
    each other, and the gate takes the median of those ratios. CPU time, not wall time: on a
    shared machine a round preempted half-way took twice as long by the clock and no longer
    by the CPU; and a ratio of two adjacent rounds shares whatever state the machine was in,
    where the best of each (the old gate) paired rounds from different moments."""

    def __init__(self, fn, values):
        self.fn, self.values = fn, values
        self.ref_us: list[float] = []
        self.ours_us: list[float] = []

    def __call__(self):
        fn, clock = self.fn, time.process_time
        t0 = clock()
        for value in self.values:
            fn(value)
        self.ref_us.append((clock() - t0) / len(self.values) * 1e6)

    def timed(self, work, events: int):
        def run():
            t0 = time.process_time()
            work()
            self.ours_us.append((time.process_time() - t0) / events * 1e6)
        return run

    def ratios(self) -> list[float]:
        """ref / ours per round, the warm-up round left out."""
        pairs = list(zip(self.ref_us, self.ours_us))[1:]
        return sorted(r / o for r, o in pairs if o > 0)


def _json_roundtrip(value: bytes) -> bytes:
    return json.dumps(json.loads(value)).encode()


def _gate(benchmark, name: str, paired: Paired, floor: float) -> None:
    per_event(benchmark, EVENTS)            # the wall-clock table, as the other benchmarks
    ratios = paired.ratios()
    ratio = statistics.median(ratios)
    ours, ref = statistics.median(paired.ours_us[1:]), statistics.median(paired.ref_us[1:])
    benchmark.extra_info[f"{name}_us_per_event"] = round(ref, 3)
    benchmark.extra_info.update(ratio=round(ratio, 2), ratio_min=round(ratios[0], 2),
                                ratio_max=round(ratios[-1], 2))
    print(f"\n{benchmark.name}: {ours:.2f} us/event, {name} {ref:.2f} us/event (CPU, medians): "
          f"{ratio:.1f}x, rounds {ratios[0]:.1f}-{ratios[-1]:.1f}x (floor {floor:g}x)")
    assert ratio >= floor, (
        f"{benchmark.name}: only {ratio:.1f}x faster than {name} ({ours:.2f} vs "
        f"{ref:.2f} us/event of CPU, median of {len(ratios)} paired rounds); the floor is {floor:g}x")


def _check_outputs(results, batches, seed_path) -> None:
    """What was timed is right, not only fast: every event scored, none dead, each output the
    input with its score, and the scores those of the seed's own XGBoost predict_proba (the
    compiled trees compute in float32: within 1e-5)."""
    checked = 0
    for result, batch in zip(results, batches):
        assert not result.dead and [i for i, _ in result.scored] == list(range(len(batch)))
        for (i, value), score in zip(result.scored, result.scores.tolist()):
            out = json.loads(value)
            assert out["transaction_id"] == json.loads(batch[i])["transaction_id"]
            assert abs(out["fraud_score"] - score) <= 1e-6
            if checked < SEED_CHECKED:
                seed = json.loads(seed_path.score(batch[i]))
                assert abs(seed["fraud_score"] - score) <= 1e-5, (seed["fraud_score"], score)
                checked += 1


def _gate_score_batch(benchmark, scorer, seed_path, payloads, paired: Paired, name: str, floor: float) -> None:
    """score_batch over EVENTS events, timed against `paired`'s reference, outputs checked."""
    batches = chunks(payloads, BATCH, EVENTS)
    results = []

    def run():
        results[:] = [scorer.score_batch(batch) for batch in batches]

    benchmark.pedantic(paired.timed(run, EVENTS), setup=paired, rounds=ROUNDS, warmup_rounds=1)
    _check_outputs(results, batches, seed_path)
    _gate(benchmark, name, paired, floor)


def test_score_batch_vs_seed_per_message(benchmark, scorer, seed_path, payloads):
    _gate_score_batch(benchmark, scorer, seed_path, payloads, Paired(seed_path.score, payloads[:100]),
                      "seed_per_message", FLOORS["seed"])


def test_score_batch_vs_json_roundtrip(benchmark, scorer, seed_path, payloads):
    _gate_score_batch(benchmark, scorer, seed_path, payloads, Paired(_json_roundtrip, payloads[:1024]),
                      "json_roundtrip", FLOORS["json"])


def test_decode_features_encode_vs_json_roundtrip(benchmark, scorer, seed_path, payloads):
    """Everything score_batch does except the trees: the part this code owns, model-agnostic."""
    batches = chunks(payloads, BATCH, EVENTS)
    scores = [scorer.model.predict(scorer.features(decode_batch(b))) for b in batches]
    paired = Paired(_json_roundtrip, payloads[:1024])
    results = []

    def run():
        out = []
        for batch, s in zip(batches, scores):
            d = decode_batch(batch)
            out.append(scorer.encode(batch, d, scorer.features(d), s, 0.0))
        results[:] = out

    benchmark.pedantic(paired.timed(run, EVENTS), setup=paired, rounds=ROUNDS, warmup_rounds=1)
    _check_outputs(results, batches, seed_path)
    _gate(benchmark, "json_roundtrip", paired, FLOORS["io"])


def test_score_batch_with_state_vs_stateless(benchmark, payloads):
    """The per-card state (issue #19) against the same batches scored stateless, round for
    round in CPU time (the stateless pass in the untimed setup of every round), both with the
    stateless model (the cost of the state, not of bigger trees). The goal is +1.0 µs/event at
    batch 1024, 1.5x on an Intel Xeon: the ceiling there (STATE_MAX_RATIO), which also fails
    the state's own cost grown 1.5x (1.54x from the 1.36x measured)."""
    scorer = Scorer.load(stateless_model_path())
    batches = chunks(payloads, BATCH, EVENTS)
    keys = [[json.loads(v)["card_hash"].encode() for v in b] for b in batches]
    parts = np.zeros(BATCH, dtype=np.int64)
    stateless_us: list[float] = []
    state_us: list[float] = []

    def stateless():
        t0 = time.process_time()
        for batch in batches:
            scorer.score_batch(batch)
        stateless_us.append((time.process_time() - t0) / EVENTS * 1e6)

    last: dict = {}

    def run():
        stores = {0: CardStore()}   # a fresh state each round: the same events, first seen
        t0 = time.process_time()
        for batch, k in zip(batches, keys):
            result = scorer.score_batch(batch, batch_velocity(stores, parts, k))
        state_us.append((time.process_time() - t0) / EVENTS * 1e6)
        last.update(cards=len(stores[0]), result=result)

    benchmark.pedantic(run, setup=stateless, rounds=ROUNDS, warmup_rounds=1)
    per_event(benchmark, EVENTS)
    # the state was kept and its features written: a state that did nothing would pass the ceiling
    cards = [json.loads(value)["card"] for _, value in last["result"].scored]
    assert last["cards"] > 0 and len(cards) == len(last["result"].scored) > 0
    assert max(card["tx_24h"] for card in cards) > 1, "no card saw its earlier transactions"
    pairs = list(zip(stateless_us, state_us))[1:]
    ratios = sorted(o / r for r, o in pairs if r > 0)
    ratio = statistics.median(ratios)
    added = statistics.median(o - r for r, o in pairs)
    benchmark.extra_info.update(ratio=round(ratio, 3), added_us=round(added, 3))
    print(f"\n{benchmark.name}: state/stateless {ratio:.2f}x (rounds {ratios[0]:.2f}-{ratios[-1]:.2f}x), "
          f"+{added:.2f} us/event of CPU (medians; ceiling {STATE_MAX_RATIO:g}x)")
    assert ratio <= STATE_MAX_RATIO, (
        f"the per-card state makes score_batch {ratio:.2f}x as costly (+{added:.2f} us/event of CPU, "
        f"median of {len(ratios)} paired rounds); at most {STATE_MAX_RATIO:g}x allowed")
