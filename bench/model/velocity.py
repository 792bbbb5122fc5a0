"""Velocity features for training, computed by the scorer's own per-card state (core.velocity).

A synthetic batch is treated like the `transactions` topic: rows split into partitions by card
key, each partition read in its order (the batch's time order, as the load generator sends
it) through one core.velocity.CardStore in micro-batches. The inputs are what the scorer has
after decoding the JSON: event time from the ISO timestamp as core.velocity.epoch_seconds
reads it, the amount as float32, the merchant category as core.velocity.merchant_id. So the
features a model is trained on are the features it is served, bit for bit
(tests/bench/model/test_velocity_features.py checks this against epoch_seconds and the JSON).
"""

from __future__ import annotations

import zlib

import numpy as np

from core.velocity import N_VELOCITY, CardStore, merchant_id

__all__ = ["velocity_features", "event_seconds", "partition_of", "PARTITIONS", "BATCH"]

PARTITIONS = 6     # the benchmark's default topic; per-card results do not depend on it
BATCH = 4_096      # micro-batch size; per-card results do not depend on it either


def event_seconds(batch) -> np.ndarray:
    """The scorer's event time of every row: whole seconds of the ISO string plus its six
    fraction digits / 10^6, in float64 (core.velocity.epoch_seconds, vectorised)."""
    micros = np.round(batch.timestamp * 1e6).astype(np.int64)
    secs, frac = np.divmod(micros, 1_000_000)
    return secs.astype(np.float64) + frac.astype(np.float64) / 1e6


def partition_of(keys: list[bytes], partitions: int) -> np.ndarray:
    """A partition per key by CRC32, as librdkafka's default partitioner places keyed records."""
    return np.fromiter((zlib.crc32(k) % partitions for k in keys), dtype=np.int64,
                       count=len(keys))


def velocity_features(batch, *, partitions: int = PARTITIONS, batch_size: int = BATCH
                      ) -> np.ndarray:
    """float32 (n, N_VELOCITY): each row's velocity features, in the batch's row order."""
    keys = [k.encode() for k in batch.card_hash.tolist()]
    t = event_seconds(batch)
    amount = batch.amount.astype(np.float32)
    cats, inverse = np.unique(batch.merchant_category, return_inverse=True)
    mcc = np.array([merchant_id(c) for c in cats.tolist()], dtype=np.int64)[inverse]
    part = partition_of(keys, partitions)
    out = np.empty((len(keys), N_VELOCITY), dtype=np.float32)
    for p in range(partitions):
        rows = np.flatnonzero(part == p)          # ascending: the partition's send order
        store = CardStore()
        for lo in range(0, len(rows), batch_size):
            r = rows[lo:lo + batch_size]
            out[r] = store.apply([keys[i] for i in r.tolist()], t[r], amount[r], mcc[r])
    return out
