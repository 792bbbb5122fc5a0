"""Hypothesis strategies for wire-contract transactions and their many JSON spellings."""

import json

from hypothesis import strategies as st

from core.schema import RESERVED_FIELD_NAMES, V_FIELDS

__all__ = ["transactions", "encodings", "raw_transactions", "mutations", "KNOWN_KEYS"]

KNOWN_KEYS = frozenset(("transaction_id", "card_hash", "amount", "timestamp",
                        "merchant_category", "_synthetic_label", *V_FIELDS, *RESERVED_FIELD_NAMES))

# finite and inside float32 range, so every generated transaction is valid
_v = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.floats(-50, 50, allow_nan=False).map(lambda f: round(f, 6)),
    st.integers(-1000, 1000),
    st.floats(-3e38, 3e38, allow_nan=False),
)
_amount = st.one_of(
    st.floats(0, 1e6, allow_nan=False).map(lambda f: round(f, 2)),
    st.sampled_from([0, 0.01, 1.0, 100, 500, 1000.0, 4999.99]),
    st.floats(0, 1e9, allow_nan=False),
)
_timestamp = st.builds(
    lambda dt, digits: f"{dt.year:04d}-{dt:%m-%dT%H:%M:%S}"
    + (f".{dt.microsecond:06d}"[:digits + 1] if digits else "") + "Z",
    st.datetimes(), st.integers(0, 6),
)
_text = st.text(min_size=1, max_size=24)
_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
_json_value = st.recursive(_json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)
_extra_key = st.text(min_size=1, max_size=12).filter(lambda k: k not in KNOWN_KEYS)


@st.composite
def transactions(draw, *, extras: bool = True) -> dict:
    """A valid transaction as a dict, sometimes with unknown extra fields."""
    tx = {
        "transaction_id": draw(_text),
        "card_hash": draw(_text),
        "amount": draw(_amount),
        "timestamp": draw(_timestamp),
        "merchant_category": draw(st.text(max_size=16)),
    }
    for name in V_FIELDS:
        tx[name] = draw(_v)
    if draw(st.booleans()):
        tx["_synthetic_label"] = draw(st.sampled_from([0, 1, None]))
    if extras:
        tx.update(draw(st.dictionaries(_extra_key, _json_value, max_size=3)))
    return tx


@st.composite
def encodings(draw, tx: dict) -> bytes:
    """tx as JSON bytes in one of many legal spellings: key order, whitespace, escapes."""
    items = list(tx.items())
    if draw(st.booleans()):
        items = draw(st.permutations(items))
    sep = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]))
    text = json.dumps(dict(items), separators=sep, ensure_ascii=draw(st.booleans()))
    pad = draw(st.sampled_from(["", " ", "\n", " \r\n\t"]))
    return (draw(st.sampled_from(["", " ", "\n"])) + text + pad).encode()


@st.composite
def raw_transactions(draw, *, extras: bool = True) -> tuple[dict, bytes]:
    """(transaction dict, its JSON bytes)."""
    tx = draw(transactions(extras=extras))
    return tx, draw(encodings(tx))


@st.composite
def mutations(draw, value: bytes) -> bytes:
    """value with a few bytes deleted, inserted, replaced or cut off: mostly invalid."""
    data = bytearray(value)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "delete" and data:
            del data[pos]
        elif kind == "insert":
            data.insert(pos, draw(st.sampled_from(b'{}[]",:0123456789.eE-+ tfn\\\x00\xff')))
        elif kind == "replace" and data:
            data[pos] = draw(st.integers(0, 255))
        else:
            del data[pos:]
    return bytes(data)
