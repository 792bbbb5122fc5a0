"""The velocity state's inputs read from a decoded batch, and its outputs written into it.

`event_columns(d, values)`: each good row's event time (epoch seconds, float64, exactly as
core.velocity.epoch_seconds computes it) and merchant id (core.velocity.merchant_id of the
`merchant_category` string), read by a numba scan of the row's bytes. The scan relies on the
decoder having accepted the row as a JSON object; rows with a backslash anywhere (escaped
strings) are read by msgspec instead, so an escape can never confuse it.

`card_objects(feats)`: for each good row `,"card":{"tx_1m":3,"amount_1m":1.2345e1,...}`,
which core.encode.splice_scores writes after the row's own fields, before the score fields. Counts are written as integers, other values
with nine significant digits (enough to give back the float32 bit for bit), NaN as null:
the text is a function of the bits only, computed with IEEE basic operations.
"""

from __future__ import annotations

import threading

import numba as nb
import numpy as np

from core.decode import Decoded, decode_one
from core.encode import _copy
from core.schema import CARD_FIELD
from core.velocity import VELOCITY_FEATURES, epoch_seconds, merchant_id

__all__ = ["CARD_FIELD", "event_columns", "card_objects", "card_json_names"]

_jit = nb.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
_inline = nb.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy", inline="always")
_KEY_TS = np.frombuffer(b"timestamp", dtype=np.uint8)
_KEY_MCC = np.frombuffer(b"merchant_category", dtype=np.uint8)
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_DAYS_BEFORE = np.array([0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334], dtype=np.int64)
_POW10 = np.array([10.0 ** k for k in range(23)])
# 10^-60 .. 10^60 as the nearest doubles (Python parses decimals correctly rounded): float32
# values lie within 1e-46 .. 3.5e38, and 9 - e for them within -30 .. 55
_P10_BIAS, _P10_TOP = 60, 120
_P10 = np.array([float(f"1e{k - _P10_BIAS}") for k in range(_P10_TOP + 1)])
_COUNTS = np.array([n.startswith("card_tx") or n in ("card_mcc_24h", "card_micro_10m")
                    for n in VELOCITY_FEATURES])


def card_json_names() -> tuple[str, ...]:
    """The keys inside the `card` object: the feature names without `card_`."""
    return tuple(n.removeprefix("card_") for n in VELOCITY_FEATURES)


@_jit
def _key_is(buf, k0, k1, key):
    if k1 - k0 != key.shape[0]:
        return False
    for j in range(key.shape[0]):
        if buf[k0 + j] != key[j]:
            return False
    return True


@_jit
def _num(buf, i, n):
    v = 0
    for k in range(i, i + n):
        v = v * 10 + (buf[k] - 48)
    return v


@_jit
def _epoch(buf, s0, s1):
    """YYYY-MM-DDTHH:MM:SS[.f]Z at buf[s0:s1] (already validated by the decoder)."""
    y = _num(buf, s0, 4)
    m = _num(buf, s0 + 5, 2)
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    days = _DAYS_BEFORE[m - 1] + (1 if leap and m > 2 else 0) + _num(buf, s0 + 8, 2) - 1
    y1 = y - 1
    days += y1 * 365 + y1 // 4 - y1 // 100 + y1 // 400 - 719162
    secs = (days * 86400 + _num(buf, s0 + 11, 2) * 3600 + _num(buf, s0 + 14, 2) * 60
            + _num(buf, s0 + 17, 2))
    nf = s1 - s0 - 21           # digits after the point (the point and Z excluded)
    if nf <= 0:
        return np.float64(secs)
    return np.float64(secs) + np.float64(_num(buf, s0 + 20, nf)) / _POW10[nf]


@_inline
def _close_quote(buf, j):
    """Index of the `"` that ends the string whose content starts at j; -1 at a backslash."""
    while buf[j] != 34 and buf[j] != 92:
        j += 1
    return j if buf[j] == 34 else -1


@_jit
def _scan(buf, starts, close, rows, t, mcc, slow):
    """t, mcc for each row; slow[k] = True where a string before both fields has a backslash
    (msgspec reads that row). Stops at the second of the two fields: the decoder vouched that
    the row is valid JSON, and neither key appears twice at the top level."""
    for k in range(rows.shape[0]):
        r = rows[k]
        b = close[r]
        slow[k] = False
        found = 0
        depth = 0
        expect_key = False
        i = starts[r]
        while i <= b and found < 2:
            c = buf[i]
            if c == 34:                                   # a string
                j = _close_quote(buf, i + 1)
                if j < 0:
                    slow[k] = True
                    break
                if depth == 1 and expect_key:            # a top-level key: read its value
                    expect_key = False
                    v = j + 1
                    while buf[v] != 58:
                        v += 1
                    v += 1
                    while buf[v] == 32 or buf[v] == 9 or buf[v] == 10 or buf[v] == 13:
                        v += 1
                    if buf[v] == 34:
                        w = _close_quote(buf, v + 1)
                        if w < 0:
                            slow[k] = True
                            break
                        if _key_is(buf, i + 1, j, _KEY_TS):
                            t[k] = _epoch(buf, v + 1, w)
                            found += 1
                        elif _key_is(buf, i + 1, j, _KEY_MCC):
                            h = _FNV_OFFSET
                            for q in range(v + 1, w):
                                h = (h ^ np.uint64(buf[q])) * _FNV_PRIME
                            mcc[k] = np.int64(h)
                            found += 1
                        i = w + 1
                        continue
                    i = v
                    continue
                i = j + 1
                continue
            if c == 123 or c == 91:
                depth += 1
                if depth == 1:
                    expect_key = True
            elif c == 125 or c == 93:
                depth -= 1
            elif c == 44 and depth == 1:
                expect_key = True
            i += 1


def event_columns(d: Decoded, values) -> tuple[np.ndarray, np.ndarray]:
    """(t float64, merchant id int64) for d's good rows, in order."""
    rows = d.good
    m = rows.shape[0]
    t = np.empty(m)
    mcc = np.empty(m, dtype=np.int64)
    slow = np.empty(m, dtype=np.bool_)
    _scan(d.buf, d.starts, d.close, rows, t, mcc, slow)
    if slow.any():
        for k in slow.nonzero()[0].tolist():
            tx = decode_one(values[int(rows[k])])
            t[k] = epoch_seconds(tx.timestamp)
            mcc[k] = merchant_id(tx.merchant_category)
    return t, mcc


# -- the `card` object -------------------------------------------------------------------------

def _name_table():
    parts = [f',"{CARD_FIELD}":{{"{n}":' if i == 0 else f',"{n}":'
             for i, n in enumerate(card_json_names())]
    raw = [p.encode() for p in parts]
    offs = np.cumsum([0] + [len(p) for p in raw]).astype(np.int64)
    return np.frombuffer(b"".join(raw), dtype=np.uint8), offs


_NAMES, _NAME_OFFS = _name_table()
_MAX_VALUE = len("-1.23456789e-123")


@_inline
def _put_int(out, o, v):
    if v < 10:
        out[o] = 48 + v
        return o + 1
    n = 0
    x = v
    while x > 0:
        x //= 10
        n += 1
    for j in range(n - 1, -1, -1):
        out[o + j] = 48 + v % 10
        v //= 10
    return o + n


@_inline
def _put_value(out, o, f, is_count):
    """JSON text of float32 f: null for NaN, an integer for counts, else nine significant
    digits d.dddddddde[-]x (a product with a constant power of ten, one rounding)."""
    d = np.float64(f)
    if np.isnan(d):
        for c in (110, 117, 108, 108):
            out[o] = c
            o += 1
        return o
    if d < 0.0:
        out[o] = 45
        o += 1
        d = -d
    if is_count:
        return _put_int(out, o, np.int64(d))
    if d == 0.0:
        out[o] = 48
        return o + 1
    # decimal exponent from the binary one (floor(e2 * log10 2), exact over this range),
    # then settled by q itself: 10^8 <= q < 10^9
    e2 = ((np.float64(d).view(np.int64) >> 52) & 0x7FF) - 1023
    e = (e2 * 78913) >> 18
    q = np.int64(0)
    for _ in range(4):
        q = np.int64(np.floor(d * _P10[8 - e + _P10_BIAS] + 0.5))
        if q >= 1_000_000_000:
            e += 1
        elif q < 100_000_000:
            e -= 1
        else:
            break
    out[o] = 48 + q // 100_000_000
    rest = q % 100_000_000
    if rest:                          # the fraction without its trailing zeros
        out[o + 1] = 46
        n = 8
        while rest % 10 == 0:
            rest //= 10
            n -= 1
        for j in range(n + 1, 1, -1):
            out[o + j] = 48 + rest % 10
            rest //= 10
        o += n + 2
    else:
        o += 1
    out[o] = 101
    o += 1
    if e < 0:
        out[o] = 45
        o += 1
        e = -e
    return _put_int(out, o, e)


@_jit
def _card_objects(feats, names, offs, counts, out, ends):
    o = 0
    for k in range(feats.shape[0]):
        for j in range(feats.shape[1]):
            o = _copy(out, o, names, offs[j], offs[j + 1])
            o = _put_value(out, o, feats[k, j], counts[j])
        out[o] = 125
        o += 1
        ends[k + 1] = o
    return o


def card_objects(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, offsets): `,"card":{...}` for each row of feats (float32 (n, 10)); row k's
    text is bytes[offsets[k]:offsets[k + 1]] (what core.encode.splice_scores takes as extra)."""
    feats = np.ascontiguousarray(feats, dtype=np.float32)
    n = feats.shape[0]
    out = _scratch(n * (_NAMES.size + feats.shape[1] * _MAX_VALUE + 1))
    ends = np.zeros(n + 1, dtype=np.int64)
    used = _card_objects(feats, _NAMES, _NAME_OFFS, _COUNTS, out, ends)
    return out[:used], ends


_local = threading.local()


def _scratch(size: int) -> np.ndarray:
    """A buffer reused by this thread (the caller copies out of it before the next call)."""
    out = getattr(_local, "out", None)
    if out is None or out.size < size:
        out = _local.out = np.empty(max(size, 1 << 16), dtype=np.uint8)
    return out
