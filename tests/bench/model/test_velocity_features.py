"""bench.model.velocity: training's velocity features are the scorer's, computed from what the
wire says, and do not depend on how the stream is cut into partitions and batches."""

import json

import numpy as np
import pytest

from bench.load import synth
from bench.model.velocity import event_seconds, partition_of, velocity_features
from core.velocity import CardStore, epoch_seconds, merchant_id

SEED = 5150


@pytest.fixture(scope="module")
def batch():
    print(f"seed={SEED}")
    return synth.generate(6_000, seed=SEED, fraud_rate=0.05, n_cards=400)


def test_event_time_is_the_scorers_reading_of_the_iso_string(batch):
    t = event_seconds(batch)
    iso = batch.iso_timestamps().tolist()
    assert [epoch_seconds(s) for s in iso] == t.tolist()


def test_features_equal_a_store_fed_from_the_json(batch):
    """One store over the whole stream in send order, inputs decoded from the payloads: one
    partition is what the training split reduces to, card by card."""
    rows = [json.loads(p) for p in batch.payloads()]
    store = CardStore()
    expected = store.apply([r["card_hash"].encode() for r in rows],
                           np.array([epoch_seconds(r["timestamp"]) for r in rows]),
                           np.array([r["amount"] for r in rows], np.float32),
                           np.array([merchant_id(r["merchant_category"]) for r in rows]))
    got = velocity_features(batch)
    np.testing.assert_array_equal(got, expected)
    assert (got[:, 4] > 1).mean() > 0.5, "cards have histories"


def test_partitions_and_batch_size_do_not_change_a_bit(batch):
    a = velocity_features(batch, partitions=6, batch_size=4096)
    b = velocity_features(batch, partitions=3, batch_size=7)
    np.testing.assert_array_equal(a, b)


def test_partition_of_is_stable_and_covers_all():
    keys = [b"%016x" % i for i in range(600)]
    p = partition_of(keys, 6)
    assert set(p.tolist()) == set(range(6))
    np.testing.assert_array_equal(p, partition_of(keys, 6))
