"""Wire-contract JSON for bench.load.synth batches, written by a numba loop.

The load generator pre-generates millions of payloads, so encoding must not cost Python calls
per field (msgspec Structs reach ~130k payloads/s here; this ~1M/s). Strings arrive as
NUL-padded byte matrices, numbers as fixed-point integers: amount with 2 decimals, V1..V28
with 6 (the decimals bench.load.synth rounds them to, so decoding gives back the batch's values).
A fraud row also names its pattern in `_synthetic_pattern` (legit rows carry no such field).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["encode_rows", "CHUNK"]

CHUNK = 65_536
_V_DECIMALS = 6
_AMOUNT_DECIMALS = 2
_N_V = 28

# The constant bytes before each value, in field order, and one closing brace.
_SEGMENTS = (
    [b'{"transaction_id":"', b'","card_hash":"', b'","amount":', b',"timestamp":"',
     b'","merchant_category":"', b'","V1":']
    + [b',"V%d":' % i for i in range(2, _N_V + 1)]
    + [b',"_synthetic_label":', b',"_synthetic_pattern":"', b'"', b"}"]
)
_KEYS = np.frombuffer(b"".join(_SEGMENTS), dtype=np.uint8)
_KEY_OFF = np.cumsum([0] + [len(s) for s in _SEGMENTS]).astype(np.int64)
_MAX_VALUE_BYTES = 32 + 2 + (_N_V + 1) * 24 + 32  # timestamp, label, numbers, pattern


def encode_rows(batch, start: int, stop: int, shift_us: int = 0) -> list[bytes]:
    """Rows start:stop of batch as JSON values, timestamps moved by shift_us microseconds."""
    out: list[bytes] = []
    for lo in range(start, stop, CHUNK):
        out.extend(_encode_chunk(batch, lo, min(lo + CHUNK, stop), shift_us))
    return out


def _pattern_names() -> np.ndarray:
    from bench.load.synth import PATTERN_NAMES
    return _str_matrix(np.asarray(PATTERN_NAMES, dtype="S"))


def _encode_chunk(batch, lo: int, hi: int, shift_us: int) -> list[bytes]:
    sl = slice(lo, hi)
    n = hi - lo
    if n <= 0:
        return []
    tx, card, cat = (_str_matrix(c) for c in (
        batch.transaction_id[sl], batch.card_hash[sl], batch.merchant_category[sl]))
    micros = np.round(batch.timestamp[sl] * 1e6).astype(np.int64) + np.int64(shift_us)
    amount = np.rint(batch.amount[sl] * 10.0 ** _AMOUNT_DECIMALS).astype(np.int64)
    v = np.rint(batch.V[sl].astype(np.float64) * 10.0 ** _V_DECIMALS).astype(np.int64)
    label = np.ascontiguousarray(batch.label[sl], dtype=np.int64)
    pattern = np.ascontiguousarray(batch.pattern[sl], dtype=np.int64)
    names = _pattern_names()
    row_max = len(_KEYS) + _MAX_VALUE_BYTES + sum(m.shape[1] for m in (tx, card, cat, names))
    buf = np.empty(n * row_max, dtype=np.uint8)
    ends = np.empty(n, dtype=np.int64)
    _write(buf, ends, _KEYS, _KEY_OFF, tx, card, amount, micros, cat, v, label, pattern, names)
    data = buf[:ends[-1]].tobytes()
    stops = ends.tolist()
    return [data[s:e] for s, e in zip([0] + stops[:-1], stops)]


def _str_matrix(col: np.ndarray) -> np.ndarray:
    """ASCII strings as a NUL-padded (n, width) uint8 matrix."""
    col = np.ascontiguousarray(col)
    if col.dtype.kind == "S":
        return col.view(np.uint8).reshape(len(col), col.dtype.itemsize)
    # str arrays are UCS-4: a numeric cast of the code points beats numpy's string codec.
    codes = col.view(np.uint32).reshape(len(col), col.dtype.itemsize // 4)
    if codes.max(initial=0) > 127:
        raise ValueError("payload strings must be ASCII")
    return codes.astype(np.uint8)


@numba.njit(cache=True)
def _digits(buf, p, value, width):
    for j in range(width - 1, -1, -1):
        buf[p + j] = 48 + value % 10
        value //= 10
    return p + width


@numba.njit(cache=True)
def _iso_time(buf, p, micros):
    """YYYY-MM-DDTHH:MM:SS.ffffffZ from epoch microseconds (proleptic Gregorian, UTC)."""
    day_us = 86_400_000_000
    days = micros // day_us
    rem = micros - days * day_us
    # civil_from_days, H. Hinnant's algorithm
    z = days + 719_468
    era = (z if z >= 0 else z - 146_096) // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    p = _digits(buf, p, year, 4)
    buf[p] = 45
    p = _digits(buf, p + 1, month, 2)
    buf[p] = 45
    p = _digits(buf, p + 1, day, 2)
    buf[p] = 84  # 'T'
    p = _digits(buf, p + 1, rem // 3_600_000_000, 2)
    buf[p] = 58
    p = _digits(buf, p + 1, rem // 60_000_000 % 60, 2)
    buf[p] = 58
    p = _digits(buf, p + 1, rem // 1_000_000 % 60, 2)
    buf[p] = 46
    p = _digits(buf, p + 1, rem % 1_000_000, 6)
    buf[p] = 90  # 'Z'
    return p + 1


@numba.njit(cache=True)
def _key(buf, p, keys, key_off, i):
    for j in range(key_off[i], key_off[i + 1]):
        buf[p] = keys[j]
        p += 1
    return p


@numba.njit(cache=True)
def _str(buf, p, row):
    for c in row:
        if c == 0:
            break
        buf[p] = c
        p += 1
    return p


@numba.njit(cache=True)
def _fixed(buf, p, k, decimals):
    if k < 0:
        buf[p] = 45  # '-'
        p += 1
        k = -k
    scale = 10 ** decimals
    whole = k // scale
    frac = k - whole * scale
    digits = 1
    t = whole
    while t >= 10:
        t //= 10
        digits += 1
    p = _digits(buf, p, whole, digits)
    buf[p] = 46  # '.'
    return _digits(buf, p + 1, frac, decimals)


@numba.njit(cache=True)
def _write(buf, ends, keys, key_off, tx, card, amount, micros, cat, v, label, pattern, names):
    p = 0
    for r in range(len(amount)):
        p = _key(buf, p, keys, key_off, 0)
        p = _str(buf, p, tx[r])
        p = _key(buf, p, keys, key_off, 1)
        p = _str(buf, p, card[r])
        p = _key(buf, p, keys, key_off, 2)
        p = _fixed(buf, p, amount[r], 2)
        p = _key(buf, p, keys, key_off, 3)
        p = _iso_time(buf, p, micros[r])
        p = _key(buf, p, keys, key_off, 4)
        p = _str(buf, p, cat[r])
        for j in range(v.shape[1]):
            p = _key(buf, p, keys, key_off, 5 + j)
            p = _fixed(buf, p, v[r, j], 6)
        p = _key(buf, p, keys, key_off, 5 + v.shape[1])
        buf[p] = 48 + label[r]
        p += 1
        if pattern[r] != 0:
            p = _key(buf, p, keys, key_off, 6 + v.shape[1])
            p = _str(buf, p, names[pattern[r]])
            p = _key(buf, p, keys, key_off, 7 + v.shape[1])
        p = _key(buf, p, keys, key_off, 8 + v.shape[1])
        ends[r] = p
