"""The per-card state applied to a micro-batch of input records, with no Kafka in sight.

batch_velocity builds the `velocity` function core.Scorer.score_batch calls: the rows of a
batch may come from several partitions, each applied in input order to its own partition's
core.velocity.CardStore. apply_input applies raw records of one partition the same way without
scoring them: the input replay after a restore (core.cardstate), which must leave the store
exactly as the live path would have.
"""

from __future__ import annotations

import numpy as np

from core.cardfields import event_columns
from core.decode import decode_batch
from core.features import AMOUNT
from core.velocity import N_VELOCITY, CardStore, apply_bounded

__all__ = ["batch_velocity", "apply_input"]


def batch_velocity(stores, parts, keys: list):
    """The `velocity` function for core.Scorer.score_batch: input row r is a transaction of
    partition parts[r] (an int64 array; its store: stores[parts[r]]) and card keys[r]. Rows of
    one partition are applied in input order, one kernel call per partition."""
    def compute(d, values) -> np.ndarray:
        rows = d.good
        t, mcc = event_columns(d)
        if rows.shape[0] == len(keys):       # usual: every row good, no copy of keys or parts
            amount, part, picked = np.ascontiguousarray(d.x[:, AMOUNT]), parts, keys
        else:
            amount, part = d.x[rows, AMOUNT], parts[rows]
            picked = list(map(keys.__getitem__, rows.tolist()))
        first = part[0]
        if part[-1] == first and (part == first).all():   # usual: one partition per process
            return apply_bounded(stores[int(first)], picked, t, amount, mcc)
        out = np.empty((rows.shape[0], N_VELOCITY), dtype=np.float32)
        for p in np.unique(part).tolist():
            sel = (part == p).nonzero()[0]
            out[sel] = apply_bounded(stores[p], list(map(picked.__getitem__, sel.tolist())), t[sel],
                                     amount[sel], mcc[sel])
        return out
    return compute


def apply_input(store: CardStore, keys: list, values: list) -> int:
    """Apply raw input records of one partition (in offset order) to `store` exactly as
    Scorer.score_batch with batch_velocity does, scoring nothing: the replay after a restore.
    Rows the decoder makes dead letters change no state, as in the live path. Returns how many
    rows were applied."""
    d = decode_batch(values)
    if d.good.size:
        batch_velocity({0: store}, np.zeros(len(values), np.int64), keys)(d, values)
    return int(d.good.size)
