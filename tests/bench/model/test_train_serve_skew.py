"""No train/serve skew: the features training builds from bench.load.synth columns equal the
features the scorer builds from decoding the same transactions' JSON."""

import numpy as np

from bench.load import synth
from core.decode import decode_batch
from core.features import fill_derived

SEED = 777


def test_decoded_payloads_give_the_training_features():
    print(f"seed={SEED}")
    batch = synth.generate(20_000, seed=SEED, fraud_rate=0.05, card_skew=0.8)
    trained_on = batch.features()
    decoded = decode_batch(batch.payloads())
    assert decoded.dead == [] and decoded.good.tolist() == list(range(len(batch)))
    served = fill_derived(decoded.x)
    np.testing.assert_array_equal(served, trained_on)


def test_one_by_one_decoding_agrees_too():
    batch = synth.generate(300, seed=SEED + 1, fraud_rate=0.2)
    trained_on = batch.features()
    for i, value in enumerate(batch.payloads()):
        row = decode_batch([value]).x
        np.testing.assert_array_equal(fill_derived(row)[0], trained_on[i], err_msg=str(i))
