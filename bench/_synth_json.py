"""Wire-contract JSON for bench.synth batches."""

from __future__ import annotations

import msgspec

__all__ = ["encode_rows"]

_Tx = msgspec.defstruct(
    "_Tx",
    [("transaction_id", str), ("card_hash", str), ("amount", float), ("timestamp", str),
     ("merchant_category", str)]
    + [(f"V{i}", float) for i in range(1, 29)] + [("_synthetic_label", int)],
)
_encode = msgspec.json.Encoder().encode


def encode_rows(batch, start: int, stop: int) -> list[bytes]:
    """Rows start:stop of batch as JSON values."""
    sl = slice(start, stop)
    v = batch.V[sl].astype("float64").round(6).tolist()
    ts = batch.iso_timestamps()[sl].tolist() if stop > start else []
    return [
        _encode(_Tx(t, c, a, s, m, *row, lab))
        for t, c, a, s, m, row, lab in zip(
            batch.transaction_id[sl].tolist(), batch.card_hash[sl].tolist(),
            batch.amount[sl].tolist(), ts, batch.merchant_category[sl].tolist(), v,
            batch.label[sl].tolist())
    ]
