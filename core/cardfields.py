"""The velocity state's inputs read from a decoded batch, and its outputs written into it.

`event_columns(d)`: each good row's event time (epoch seconds, float64, exactly as
core.velocity.epoch_seconds computes it) and merchant id (core.velocity.merchant_id of the
`merchant_category` string). For the rows the decoder's kernel read, from the two strings'
bytes where it found them (plain ASCII, no escapes: core._jsonscan), so no second scan of
the row; the rows msgspec decoded (escapes, non-ASCII, ...) from their decoded Transaction.

`card_objects(feats)`: for each good row `,"card":{"tx_1m":3,"amount_1m":1.2345e1,...}`,
which core.encode.splice_scores writes after the row's own fields, before the score fields.
Counts are written as integers, other values with nine significant digits (enough to give
back the float32 bit for bit), NaN as null: the text is a function of the bits only, computed
with IEEE basic operations (a value with the bits of the row's previous sum is not formatted
again: its text is copied).
"""

from __future__ import annotations

import threading

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from core.decode import Decoded
from core.schema import CARD_FIELD
from core.velocity import VELOCITY_COUNTS, VELOCITY_FEATURES, epoch_seconds, merchant_id

__all__ = ["CARD_FIELD", "event_columns", "card_objects", "card_json_names"]

_jit = nb.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy", _nrt=False)
_inline = nb.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy", inline="always", _nrt=False)
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_DAYS_BEFORE = np.array([0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334], dtype=np.int64)
_POW10 = np.array([10.0 ** k for k in range(23)])
# 10^-60 .. 10^60 as the nearest doubles (Python parses decimals correctly rounded): float32
# values lie within 1e-46 .. 3.5e38, and 9 - e for them within -30 .. 55
_P10_BIAS, _P10_TOP = 60, 120
_P10 = np.array([float(f"1e{k - _P10_BIAS}") for k in range(_P10_TOP + 1)])
_COUNTS = np.array([n in VELOCITY_COUNTS for n in VELOCITY_FEATURES])


def card_json_names() -> tuple[str, ...]:
    """The keys inside the `card` object: the feature names without `card_`."""
    return tuple(n.removeprefix("card_") for n in VELOCITY_FEATURES)


@_inline
def _num(buf, i, n):
    v = 0
    for k in range(i, i + n):
        v = v * 10 + (buf[k] - 48)
    return v


@_inline
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


@_jit
def _events(buf, spans, rows, t, mcc):
    """t, mcc of each row whose spans the decoder recorded; False if a row has none."""
    complete = True
    for k in range(rows.shape[0]):
        r = rows[k]
        s0 = spans[r, 0]
        if s0 < 0:
            complete = False
            continue
        t[k] = _epoch(buf, s0, spans[r, 1])
        h = _FNV_OFFSET
        for q in range(spans[r, 2], spans[r, 3]):
            h = (h ^ np.uint64(buf[q])) * _FNV_PRIME
        mcc[k] = np.int64(h)
    return complete


def event_columns(d: Decoded) -> tuple[np.ndarray, np.ndarray]:
    """(t float64, merchant id int64) for d's good rows, in order."""
    rows = d.good
    m = rows.shape[0]
    t = np.empty(m)
    mcc = np.empty(m, dtype=np.int64)
    if not _events(d.buf, d.spans, rows, t, mcc):
        slow = d.slow
        for k in (d.spans[rows, 0] < 0).nonzero()[0].tolist():
            tx = slow[int(rows[k])]
            t[k] = epoch_seconds(tx.timestamp)
            mcc[k] = merchant_id(tx.merchant_category)
    return t, mcc


# -- the `card` object -------------------------------------------------------------------------

_NAME_WORDS = 3      # each `,"name":` piece is written as 3 little-endian 8-byte words


def _name_table():
    """(words uint64 (N_VELOCITY, _NAME_WORDS), lengths): `,"card":{"tx_1m":`, `,"amount_1m":`, ..."""
    parts = [f',"{CARD_FIELD}":{{"{n}":' if i == 0 else f',"{n}":'
             for i, n in enumerate(card_json_names())]
    raw = [p.encode() for p in parts]
    width = 8 * _NAME_WORDS
    assert max(map(len, raw)) <= width
    words = np.frombuffer(b"".join(r.ljust(width, b"\0") for r in raw), dtype="<u8")
    return words.reshape(len(raw), _NAME_WORDS).copy(), np.array([len(r) for r in raw], np.int64)


_NAMES, _NAME_LENGTHS = _name_table()
_MAX_VALUE = len("-1.23456789e-123")


@intrinsic
def _store_word(typingctx, buf, i, w):
    """buf[i:i + 8] = the 8 bytes of uint64 w, little-endian, in one unaligned store."""
    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        ptr = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(64).as_pointer())
        builder.store(args[2], ptr, align=1)
        return context.get_dummy_value()
    return types.void(buf, i, w), codegen


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
    """JSON text of float32 f: null for NaN (and infinity, which JSON cannot spell and the
    features never hold), an integer for counts, else nine significant digits d.dddddddde[-]x
    (a product with a constant power of ten, one rounding)."""
    d = np.float64(f)
    if not np.isfinite(d):
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
def _card_objects(feats, names, lengths, counts, out, ends):
    """Each row's text into out (which has room for _NAME_WORDS * 8 bytes past the end: a
    name is written as whole words, and what follows overwrites the excess)."""
    o = 0
    for k in range(feats.shape[0]):
        same_bits = np.uint32(0)
        same_a = -1                   # where the text of the last non-count value lies
        same_b = -1
        for j in range(feats.shape[1]):
            for w in range(_NAME_WORDS):
                _store_word(out, o + 8 * w, names[j, w])
            o += lengths[j]
            f = feats[k, j]
            bits = np.float32(f).view(np.uint32)
            if counts[j]:
                o = _put_value(out, o, f, True)
            elif same_a >= 0 and bits == same_bits:
                # the 1 min, 1 h and 24 h sums are mostly the same float: same bits, same text
                for i in range(same_b - same_a):
                    out[o + i] = out[same_a + i]
                o += same_b - same_a
            else:
                same_bits = bits
                same_a = o
                o = _put_value(out, o, f, False)
                same_b = o
        out[o] = 125
        o += 1
        ends[k + 1] = o
    return o


def card_objects(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, offsets): `,"card":{...}` for each row of feats (float32 (n, 10)); row k's
    text is bytes[offsets[k]:offsets[k + 1]] (what core.encode.splice_scores takes as extra)."""
    feats = np.ascontiguousarray(feats, dtype=np.float32)
    n = feats.shape[0]
    out = _scratch(n * (int(_NAME_LENGTHS.sum()) + feats.shape[1] * _MAX_VALUE + 1) + 8 * _NAME_WORDS)
    ends = np.zeros(n + 1, dtype=np.int64)
    used = _card_objects(feats, _NAMES, _NAME_LENGTHS, _COUNTS, out, ends)
    return out[:used], ends


_local = threading.local()


def _scratch(size: int) -> np.ndarray:
    """A buffer reused by this thread (the caller copies out of it before the next call)."""
    out = getattr(_local, "out", None)
    if out is None or out.size < size:
        out = _local.out = np.empty(max(size, 1 << 16), dtype=np.uint8)
    return out
