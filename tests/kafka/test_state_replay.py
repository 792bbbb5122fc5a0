"""The per-card state is exactly once: replay-identical scores through kills, a zombie and a
rebalance (issue #19, item 3).

The same input goes to two topic namespaces on the same broker (one producer, the same keys:
the same partitions, in the same order). Run A scores it undisturbed. Run B scores it while
>= 5 random busy workers are SIGKILLed, one worker is SIGSTOPped past its session timeout
and then continued (a zombie: its partitions were given away meanwhile, its open transaction
must fail), and a second service joins the group and leaves it again (two rebalances, each
revoking and restoring every partition's state). Both runs must be exactly once (every
valid transaction scored once, the dead letters once), and for every transaction_id the
`card` object (the velocity features) and fraud_score must be identical between them.
Cards repeat a lot (2,000 cards, Zipf-skewed, bursts), so the features depend on history.
The state is written as snapshots every 5 s (the default): kills land between snapshots, so
restores replay input from the last snapshot to the committed offset, and the test asserts
that they did.
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
import uuid

import msgspec
import pytest

from tests.kafka.eos_harness import (Service, make_inputs, produce_inputs, verify, wait_drained,
                                     wait_first_commit)
from tests.kafka.kafka_io import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]

N_VALID = 30_000
N_HOSTILE = 60
SYNTH = {"fraud_rate": 0.03, "n_cards": 2_000, "card_skew": 0.8, "span_s": 4 * 3600.0}
MIN_KILLS = 5
TAIL_TPS = 1_000
SESSION_MS = 6_000       # the broker's group.min.session.timeout.ms: the zombie part stays short
WORKERS = 3
# small transactions: many commits (and restores) per run, so kills land between them
SERVICE_X = ("-X", "linger.ms=5", "-X", f"session.timeout.ms={SESSION_MS}",
             "--batch-max-records", "500")


def _seed() -> int:
    seed = int(os.environ.get("EOS_SEED", time.time_ns() % 1_000_000))
    print(f"seed={seed} (rerun with EOS_SEED={seed})")
    return seed


def _scores(bootstrap, names, n) -> dict[str, tuple]:
    decode = msgspec.json.Decoder().decode
    out = {}
    for m in read_all(bootstrap, names.scores, expect=n, idle_s=2.0):
        event = decode(m.value())
        out[event["transaction_id"]] = (event["fraud_score"], event["card"])
    return out


def _undisturbed(bootstrap, names, inputs, tmp_path):
    group = f"replay-a-{uuid.uuid4().hex[:8]}"
    service = Service(bootstrap, names, group, tmp_path, workers=WORKERS, extra=SERVICE_X, tag="calm")
    try:
        wait_drained(bootstrap, group, names.transactions, timeout=300, service=service)
    finally:
        code = service.stop()
    assert code == 0, service.tail()


def _disturbed(bootstrap, names, inputs, split, tmp_path, rng):
    group = f"replay-b-{uuid.uuid4().hex[:8]}"
    service = Service(bootstrap, names, group, tmp_path, workers=WORKERS, extra=SERVICE_X, tag="storm")
    tail = threading.Thread(target=produce_inputs, args=(bootstrap, names.transactions, inputs,
                                                         inputs.records[split:]), kwargs={"tps": TAIL_TPS})
    joiner = None
    events = []
    try:
        service.wait_workers(WORKERS)
        wait_first_commit(bootstrap, group, names.transactions, service)
        tail.start()
        zombie = service.kill_random_worker(rng, signal.SIGSTOP)
        assert zombie is not None, service.tail()
        events.append(f"SIGSTOP {zombie}")
        time.sleep(SESSION_MS / 1000 + 3)             # its session expires: partitions move
        os.kill(zombie, signal.SIGCONT)
        events.append(f"SIGCONT {zombie}")
        joiner = Service(bootstrap, names, group, tmp_path, workers=2, first_slot=WORKERS,
                         extra=SERVICE_X, tag="joiner")
        events.append("joiner up")
        while service.kills < MIN_KILLS or joiner is not None:
            time.sleep(rng.uniform(0.7, 2.0))
            pid = service.kill_random_worker(rng)
            if pid is not None:
                events.append(f"kill {pid}")
            if joiner is not None and service.kills >= 3:
                assert joiner.stop() == 0, joiner.tail()
                joiner = None
                events.append("joiner left")
        tail.join()
        wait_drained(bootstrap, group, names.transactions, timeout=300, service=service)
    finally:
        if tail.is_alive():
            tail.join()
        if joiner is not None:
            joiner.stop()
        code = service.stop()
    print("run B:", ", ".join(events))
    assert code == 0, service.tail()
    assert service.kills >= MIN_KILLS
    text = service.log_path.read_text(errors="replace")
    assert "restored" in text, "no partition was restored from the changelog"
    # kills between snapshots: restores replayed input past the snapshot (core.snapshot)
    replayed = [int(n) for n in re.findall(r"replayed \S+\[\d+\] from \d+ to \d+: (\d+) records", text)]
    print(f"run B: {len(replayed)} restores replayed input, {sum(replayed):,} records in all")
    assert sum(replayed) > 0, "no restore replayed any input: the snapshot + replay path was not exercised"
    return service


def test_scores_and_features_identical_through_kills_zombie_and_rebalance(kafka_bootstrap, fresh_topics, tmp_path):
    pytest.importorskip("core.scorer")
    seed = _seed()
    rng = random.Random(seed)
    inputs = make_inputs(N_VALID, N_HOSTILE, seed, **SYNTH)
    calm, storm = fresh_topics("replay-a"), fresh_topics("replay-b")
    split = int(len(inputs.records) * 0.5)
    produce_inputs(kafka_bootstrap, calm.transactions, inputs)
    produce_inputs(kafka_bootstrap, storm.transactions, inputs, inputs.records[:split])
    _undisturbed(kafka_bootstrap, calm, inputs, tmp_path)
    _disturbed(kafka_bootstrap, storm, inputs, split, tmp_path, rng)

    for names in (calm, storm):
        v = verify(kafka_bootstrap, names, inputs)
        assert v.exactly_once(), v
    a = _scores(kafka_bootstrap, calm, N_VALID)
    b = _scores(kafka_bootstrap, storm, N_VALID)
    assert len(a) == len(b) == N_VALID
    differ = [t for t in a if a[t] != b[t]]
    assert not differ, f"{len(differ)} differ, e.g. {[(t, a[t], b[t]) for t in differ[:3]]}"
    # the features depend on history: a run that ignored state would not match run A
    busy = sum(1 for _, card in a.values() if card["tx_24h"] > 1)
    assert busy > N_VALID // 2, f"only {busy} transactions saw an earlier one of their card"
    assert any(card["tx_1m"] > 3 for _, card in a.values())
