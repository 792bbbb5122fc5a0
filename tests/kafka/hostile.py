"""Hostile input for the chaos test: many kinds of bad values, each with the dead-letter kind
it must get (the part of the reason before the first colon, core.schema.DEAD_KINDS).

Each kind is a rule of the wire contract (shared/DESIGN.md: JSON, UTF-8, the fields typed):
- not JSON at all, JSON cut short, a BOM before it, raw control characters in a string,
  the NaN / Infinity literals (JSON has none), lone surrogate escapes: invalid JSON;
- bytes that are not UTF-8, in a known field or in an unknown key: invalid UTF-8 (an unknown
  field is carried into fraud-scores, so its bytes must be valid too);
- an array, a string, a number, null, true at the top: not a JSON object;
- empty value, whitespace only, tombstone (None): invalid JSON, still dead-lettered with its
  coordinates (a tombstone is not a delete here: `transactions` is not compacted);
- a field missing, a field of the wrong type (nested object or array included), a reserved
  output field, a bad timestamp, an amount below 0 or above 1e9, numbers beyond float32 or
  beyond double, a 400-digit number;
- a contract field named twice (parsers disagree on which one counts): duplicate field;
- a ~900 KB value (the broker takes it; the scorer's limit is 64 KiB): value too large.
"""

from __future__ import annotations

import random

import msgspec

from core.schema import (
    BAD_JSON, BAD_TIMESTAMP, BAD_UTF8, DUPLICATE_FIELD, MISSING_FIELD, NON_FINITE, NOT_OBJECT,
    OUT_OF_RANGE, REQUIRED_FIELDS, RESERVED_FIELD, TOO_LARGE, WRONG_TYPE,
)

__all__ = ["hostile_records", "BIG_VALUE_BYTES"]

BIG_VALUE_BYTES = 900_000


def _base(i: int) -> dict:
    return {"transaction_id": f"hostile-{i}", "card_hash": f"hc-{i % 97}", "amount": 12.5,
            "timestamp": "2026-01-01T10:00:00Z", "merchant_category": "grocery",
            **{f"V{k}": 0.1 for k in range(1, 29)}}


def _enc(tx: dict) -> bytes:
    return msgspec.json.encode(tx)


def _with(i: int, field: str, literal: bytes) -> bytes:
    """The base transaction with `field`'s value spelled as `literal` (raw JSON bytes)."""
    tx = _base(i)
    tx[field] = "@@"
    return _enc(tx).replace(b'"@@"', literal)


def _malformed(i, rng):
    return rng.choice([b"not json %d" % i, b'{"transaction_id": "%d", ' % i + b"x" * rng.randint(1, 40),
                       b"{'transaction_id': '%d'}" % i, b'{"transaction_id":"%d",}' % i]), BAD_JSON


def _truncated(i, rng):
    value = _enc(_base(i))
    return value[:rng.randint(1, len(value) - 1)], BAD_JSON


def _bom(i, rng):
    return b"\xef\xbb\xbf" + _enc(_base(i)), BAD_JSON


def _control(i, rng):
    tx = _base(i)
    tx["merchant_category"] = "gro@@cery"
    return _enc(tx).replace(b"@@", bytes([rng.choice([0, 1, 8, 10, 27, 31])])), BAD_JSON


def _nan_inf(i, rng):
    return _with(i, f"V{1 + i % 28}", rng.choice([b"NaN", b"Infinity", b"-Infinity", b"nan"])), BAD_JSON


def _surrogate(i, rng):
    return _with(i, "merchant_category", rng.choice([b'"\\ud800"', b'"x\\udc00"'])), BAD_JSON


def _not_utf8(i, rng):
    tx = _base(i)
    where = i % 3
    if where == 0:
        tx["merchant_category"] = "@@"
        return _enc(tx).replace(b"@@", b"caf\xe9"), BAD_UTF8   # latin-1, not UTF-8
    if where == 1:   # in an unknown key: msgspec skips unknown fields unchecked
        tx["@@synthetic_label"] = 0
        return _enc(tx).replace(b"@@", b"\x80"), BAD_UTF8
    tx["note"] = {"x": ["@@"]}   # nested in an unknown value, an encoded surrogate
    return _enc(tx).replace(b"@@", b"\xed\xa0\x80"), BAD_UTF8


def _not_object(i, rng):
    return rng.choice([b"[%d, 1, 2]" % i, b'"hostile-%d"' % i, b"%d" % i, b"null", b"true",
                       b"[" + _enc(_base(i)) + b"]"]), NOT_OBJECT


def _empty(i, rng):
    return rng.choice([b"", b" ", b"\n\t ", None]), BAD_JSON


def _missing(i, rng):
    tx = _base(i)
    del tx[REQUIRED_FIELDS[i % len(REQUIRED_FIELDS)]]
    return _enc(tx), MISSING_FIELD


def _wrong_type(i, rng):
    field, literal = rng.choice([
        ("V7", b'"abc"'), ("amount", b"true"), ("transaction_id", b"17"), ("V3", b"null"),
        ("amount", b'{"value":12.5}'), ("V1", b"[0.1]"), ("card_hash", b'{"a":{"b":[1]}}'),
        ("_synthetic_label", b"0.5"), ("timestamp", b"1767261600")])
    return _with(i, field, literal), WRONG_TYPE


def _numbers(i, rng):
    return rng.choice([
        (_with(i, "V5", b"1e400"), NON_FINITE), (_with(i, "V5", b"-1e39"), NON_FINITE),
        (_with(i, "V9", b"9" * 400), NON_FINITE), (_with(i, "amount", b"1e300"), NON_FINITE),
        (_with(i, "amount", b"-5.0"), OUT_OF_RANGE), (_with(i, "amount", b"2000000000"), OUT_OF_RANGE),
        (_with(i, "transaction_id", b'""'), OUT_OF_RANGE)])


def _reserved(i, rng):
    tx = _base(i)
    tx[rng.choice(["fraud_score", "is_fraud", "model_version", "risk_level"])] = 0
    return _enc(tx), RESERVED_FIELD


def _timestamp(i, rng):
    return _with(i, "timestamp", rng.choice([b'"yesterday"', b'"2026-02-30T10:00:00Z"',
                                             b'"2026-01-01T10:00:00+00:00"', b'"2026-01-01 10:00:00Z"'])), BAD_TIMESTAMP


def _duplicate(i, rng):
    field = rng.choice(["amount", "V4", "card_hash", "timestamp"])
    value = _enc(_base(i))
    twice = b'"%s":%s,' % (field.encode(), b"999.0" if field in ("amount", "V4") else b'"dup"')
    return value[:1] + twice + value[1:], DUPLICATE_FIELD


def _too_large(i, rng):
    tx = _base(i)
    tx["pad"] = "y" * BIG_VALUE_BYTES
    return _enc(tx), TOO_LARGE


# (kind, generator, weight): the 900 KB values are few so the test does not move gigabytes
_KINDS = [
    ("malformed", _malformed, 10), ("truncated", _truncated, 10), ("bom", _bom, 5),
    ("control characters", _control, 8), ("NaN/Infinity", _nan_inf, 8), ("surrogate", _surrogate, 4),
    ("not UTF-8", _not_utf8, 10), ("not an object", _not_object, 8), ("empty/tombstone", _empty, 6),
    ("missing field", _missing, 8), ("wrong type", _wrong_type, 10), ("numbers", _numbers, 8),
    ("reserved field", _reserved, 4), ("bad timestamp", _timestamp, 5), ("duplicate field", _duplicate, 6),
]
_BIG = 12


def hostile_records(n: int, rng: random.Random) -> list[tuple[str, bytes | None, str]]:
    """n bad values as (kind, value, expected dead-letter kind); _BIG of them ~900 KB."""
    kinds = [k for k, _, _ in _KINDS]
    weights = [w for _, _, w in _KINDS]
    makers = {k: f for k, f, _ in _KINDS}
    out = [("too large", *_too_large(i, rng)) for i in range(_BIG)]
    for i in range(_BIG, n):
        kind = rng.choices(kinds, weights)[0]
        out.append((kind, *makers[kind](i, rng)))
    rng.shuffle(out)
    return out
