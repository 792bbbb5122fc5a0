"""numba kernel: scan a batch of transaction JSON values straight into the feature matrix.

The scanner accepts a strict, common subset of JSON and fully validates it: one flat object,
ASCII keys and strings without escapes, numbers that parse exactly or to within one double ulp,
no nested values, every required field once, a `...Z` timestamp. Anything else (escapes,
non-ASCII, nesting, duplicates, wrong types, reserved names, odd numbers) is not judged here:
the row is handed to the msgspec slow path in core.decode, which either decodes it or writes
the precise dead-letter reason. So the kernel can be simple without ever being wrong.

duplicate_field serves that slow path: msgspec keeps the last of a field named twice, and a
byte walk over the (already validated) object finds such a contract field. Before msgspec
sees a row, the walk also measures its nesting: msgspec (and json) recurse once per level and
raise RecursionError near Python's recursion limit, a depth that varies with the caller's
stack, so a row nested past MAX_DEPTH is a dead letter by this rule instead.
"""

import sys

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

from core import features, schema
from core.schema import RESERVED_FIELD_NAMES

__all__ = ["OK", "SLOW", "TOO_LARGE", "ESCAPED_KEY", "TOO_DEEP", "MAX_DEPTH", "scan_batch", "key_table",
           "duplicate_field", "duplicate_fields"]

# per-row status
OK, SLOW, TOO_LARGE = 0, 1, 2
# duplicate_field's answer when a top-level key is spelled with escapes
ESCAPED_KEY = -2
# ... and when arrays and objects nest deeper than MAX_DEPTH (checked first)
TOO_DEEP = -3
MAX_DEPTH = 64

# The kernels bake these globals into numba's on-disk cache, which is invalidated only when
# THIS file changes: so they are spelled out here and checked against their owners at import.
N_V, AMOUNT, HOUR = 28, 28, 30
MAX_AMOUNT = 1e9
if (N_V, AMOUNT, HOUR, MAX_AMOUNT) != (features.N_V, features.AMOUNT, features.HOUR,
                                       schema.MAX_AMOUNT):
    raise ImportError("core._jsonscan constants disagree with core.features/core.schema: "
                      "update N_V, AMOUNT, HOUR, MAX_AMOUNT in core/_jsonscan.py")
if sys.byteorder != "little":  # the 8-byte word tricks read bytes in little-endian order
    raise ImportError("core._jsonscan needs a little-endian CPU")

# field codes: 0..27 are V1..V28 (also their column), AMOUNT is its column
F_TIMESTAMP, F_TXID, F_CARD, F_MERCHANT, F_LABEL = range(AMOUNT + 1, AMOUNT + 6)
F_RESERVED = 62
REQUIRED_MASK = (1 << (F_MERCHANT + 1)) - 1

# powers of ten that are exact doubles (Clinger's fast path)
_POW10 = np.array([10.0 ** k for k in range(23)], dtype=np.float64)
_IPOW10 = np.array([10 ** k for k in range(19)], dtype=np.int64)
_MAX_DIGITS = 18  # significant digits kept in an int64 mantissa
_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def key_table():
    """(names uint8 (k, width), lengths, codes) for the non-V keys the scanner knows."""
    named = [("amount", AMOUNT), ("timestamp", F_TIMESTAMP), ("transaction_id", F_TXID),
             ("card_hash", F_CARD), ("merchant_category", F_MERCHANT),
             ("_synthetic_label", F_LABEL)]
    named += [(name, F_RESERVED) for name in RESERVED_FIELD_NAMES]
    width = max(len(name) for name, _ in named)
    names = np.zeros((len(named), width), dtype=np.uint8)
    for j, (name, _) in enumerate(named):
        names[j, :len(name)] = np.frombuffer(name.encode(), dtype=np.uint8)
    lengths = np.array([len(name) for name, _ in named], dtype=np.int64)
    codes = np.array([code for _, code in named], dtype=np.int64)
    return names, lengths, codes


def _next_v_keys():
    """For V1..V27: the bytes `,"V<n+1>":` that follow its value in the usual key order, as a
    little-endian word, its mask and its length."""
    words, masks, lengths = [], [], []
    for n in range(1, N_V):
        key = b',"V%d":' % (n + 1)
        words.append(int.from_bytes(key.ljust(8, b"\0"), "little"))
        masks.append((1 << 8 * len(key)) - 1)
        lengths.append(len(key))
    return (np.array(words, dtype=np.uint64), np.array(masks, dtype=np.uint64),
            np.array(lengths, dtype=np.int64))


_NEXT_KEY, _NEXT_MASK, _NEXT_LEN = _next_v_keys()


@intrinsic
def _word(typingctx, buf, i):
    """The 8 bytes at buf[i:i + 8] as a little-endian uint64, in one unaligned load."""
    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        ptr = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(64).as_pointer())
        return builder.load(ptr, align=1)
    return types.uint64(buf, i), codegen


# NRT off: with it, every helper call taking `buf` does an atomic incref/decref of the array,
# measured at ~15 ns per call (15x the byte loop itself). The kernels never allocate.
_jit = nb.njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
# Helpers inlined at numba IR level: scan measured 1.88 -> 1.62 us/event (same compile time).
_helper = nb.njit(cache=True, nogil=True, boundscheck=False, _nrt=False, inline="always")


@_helper
def _u(i):
    # An unsigned index spares numba's negative-index wraparound on every byte read.
    return nb.uint64(i)


@_helper
def _ws(buf, i, end):
    # compact JSON has no whitespace: one test instead of four on the common path
    if i < end and buf[_u(i)] > 32:
        return i
    while i < end:
        b = buf[_u(i)]
        if b != 32 and b != 10 and b != 13 and b != 9:
            break
        i += 1
    return i


_ONES = np.uint64(0x0101010101010101)
_HIGHS = np.uint64(0x8080808080808080)
_QUOTES = np.uint64(0x2222222222222222)
_BACKSLASHES = np.uint64(0x5C5C5C5C5C5C5C5C)
_SPACES = np.uint64(0x2020202020202020)


@_helper
def _string_end(buf, i, end):
    """Index of the closing quote of a plain ASCII string starting at i, or -1."""
    while i + 8 <= end:  # 8 bytes a step: the first byte that is `"`, `\\`, < 0x20 or >= 0x80
        w = _word(buf, i)
        q = w ^ _QUOTES
        b = w ^ _BACKSLASHES
        # (v - 0x01..) & ~v & 0x80.. flags zero bytes (and < 0x20 ones when subtracting 0x20..):
        # exact up to the first flagged byte, which is all we look at
        m = (((q - _ONES) & ~q) | ((b - _ONES) & ~b) | ((w - _SPACES) & ~w) | w) & _HIGHS
        if m != 0:
            k = i + (nb.int64(trailing_zeros(m)) >> 3)
            return k if buf[_u(k)] == 34 else -1
        i += 8
    while i < end:
        b = buf[_u(i)]
        if b == 34:
            return i
        if b == 92 or b < 32 or b >= 128:
            return -1
        i += 1
    return -1


@_helper
def _field_code(buf, k0, k1, names, lengths, codes):
    n = k1 - k0
    if buf[k0] == 86:  # V1..V28, no leading zeros
        if n == 2:
            d = buf[k0 + 1] - 48
            if 1 <= d <= 9:
                return d - 1
        elif n == 3:
            d1 = buf[k0 + 1] - 48
            d2 = buf[k0 + 2] - 48
            if 1 <= d1 <= 2 and 0 <= d2 <= 9 and d1 * 10 + d2 <= N_V:
                return d1 * 10 + d2 - 1
        return -1
    for j in range(lengths.shape[0]):
        if lengths[j] == n:
            same = True
            for k in range(n):
                if names[j, k] != buf[k0 + k]:
                    same = False
                    break
            if same:
                return codes[j]
    return -1


@_helper
def _v_key(buf, i, end):
    """(column, index of the closing quote) of a "V1".."V28" key at i, or (-1, -1)."""
    if i + 3 < end and buf[_u(i)] == 86:
        d1 = np.int64(buf[_u(i + 1)]) - 48
        if 1 <= d1 <= 9:
            b = buf[_u(i + 2)]
            if b == 34:
                return d1 - 1, i + 2
            d2 = np.int64(b) - 48
            if 0 <= d2 <= 9 and buf[_u(i + 3)] == 34 and d1 * 10 + d2 <= N_V:
                return d1 * 10 + d2 - 1, i + 3
    return -1, -1


_ZEROS = np.uint64(0x3030303030303030)
_SIXES = np.uint64(0x0606060606060606)
_HIGH_NIBBLES = np.uint64(0xF0F0F0F0F0F0F0F0)


@_helper
def _digit_run(buf, i):
    """(n, value) of the n ASCII digits at i when n < 8; n = 8 (value 0) when all 8 bytes
    from i are digits. Branch-free, where a byte loop pays a test per digit."""
    w = _word(buf, i) ^ _ZEROS  # digits become bytes 0..9
    # a byte is a digit iff its high nibble is 0 and adding 6 leaves it 0; a carry out of a
    # non-digit byte can only disturb the bytes after the first non-digit
    m = (w | (w + _SIXES)) & _HIGH_NIBBLES
    if m == 0:
        return 8, 0
    n = nb.int64(trailing_zeros(m)) >> 3
    if n == 0:
        return 0, 0
    w <<= nb.uint64(64 - 8 * n)  # the digits to the top: the zero bytes become leading zeros
    # pairs, then quads, then all eight digits combined (little-endian: first byte first)
    w = (w * nb.uint64(10) + (w >> nb.uint64(8))) & nb.uint64(0x00FF00FF00FF00FF)
    w = (w * nb.uint64(100) + (w >> nb.uint64(16))) & nb.uint64(0x0000FFFF0000FFFF)
    w = (w * nb.uint64(10000) + (w >> nb.uint64(32))) & nb.uint64(0xFFFFFFFF)
    return n, nb.int64(w)


@_helper
def _number(buf, i, end):
    """Parse a JSON number at i: (next index or -1, value, is plain integer)."""
    neg = buf[_u(i)] == 45
    i += 1 if neg else 0  # no branch on the sign: it is a coin flip in real data
    if i + 16 <= end:  # fast path: [-]d{1,7}[.d{1,7}] without exponent, read as two words
        n, whole = _digit_run(buf, i)
        if 1 <= n < 8 and (n == 1 or buf[_u(i)] != 48):
            j = i + n
            b = buf[_u(j)]
            if b == 46:
                nf, frac = _digit_run(buf, j + 1)
                k = j + 1 + nf
                if 1 <= nf < 8 and buf[_u(k)] | 32 != 101:  # not followed by e or E
                    mant = whole * _IPOW10[nf] + frac
                    value = float(mant) / _POW10[nf] if mant != 0 else 0.0
                    return k, -value if neg else value, False
            elif b | 32 != 101:
                value = float(whole)
                return j, -value if neg else value, True
    first = i
    mant = 0
    nd = 0
    e10 = 0
    is_int = True
    # (integer and fraction digits have their own loops: one shared helper measured 5% slower)
    while i < end:
        d = np.int64(buf[_u(i)]) - 48
        if d < 0 or d > 9:
            break
        if nd < _MAX_DIGITS:
            mant = mant * 10 + d
            nd += 1
        else:
            e10 += 1
        i += 1
    if i == first or (buf[_u(first)] == 48 and i > first + 1):
        return -1, 0.0, False  # no digits, or a leading zero
    if mant == 0:
        nd = 0  # a lone "0" is not a significant digit
    if i < end and buf[_u(i)] == 46:  # fraction
        is_int = False
        i += 1
        start = i
        while i < end:
            d = np.int64(buf[_u(i)]) - 48
            if d < 0 or d > 9:
                break
            if nd < _MAX_DIGITS:
                mant = mant * 10 + d
                e10 -= 1
                if mant != 0:
                    nd += 1
            i += 1
        if i == start:
            return -1, 0.0, False
    if i < end and (buf[i] == 101 or buf[i] == 69):  # exponent
        is_int = False
        i += 1
        sign = 1
        if i < end and (buf[i] == 43 or buf[i] == 45):
            if buf[i] == 45:
                sign = -1
            i += 1
        start = i
        ex = 0
        while i < end:
            d = buf[i] - 48
            if d < 0 or d > 9:
                break
            if ex < 100000:
                ex = ex * 10 + d
            i += 1
        if i == start:
            return -1, 0.0, False
        e10 += sign * ex
    if mant == 0:
        value = 0.0
    elif 0 <= e10 <= 22:
        value = float(mant) * _POW10[e10]
    elif -22 <= e10 < 0:
        value = float(mant) / _POW10[-e10]
    else:
        return -1, 0.0, False  # rare magnitudes: let msgspec parse them exactly
    if is_int and e10 != 0:
        is_int = False
    return i, -value if neg else value, is_int


@_helper
def _digits(buf, i, n):
    v = 0
    for k in range(i, i + n):
        d = buf[k] - 48
        if d < 0 or d > 9:
            return -1
        v = v * 10 + d
    return v


@_helper
def _utc_hour(buf, s0, s1):
    """Hour of YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z at buf[s0:s1], or -1 if not exactly that."""
    n = s1 - s0
    if n != 20 and not 22 <= n <= 30:
        return -1
    if (buf[s0 + 4] != 45 or buf[s0 + 7] != 45 or buf[s0 + 10] != 84 or buf[s0 + 13] != 58
            or buf[s0 + 16] != 58 or buf[s1 - 1] != 90):
        return -1
    if n > 20:
        if buf[s0 + 19] != 46 or _digits(buf, s0 + 20, n - 21) < 0:
            return -1
    year = _digits(buf, s0, 4)
    month = _digits(buf, s0 + 5, 2)
    day = _digits(buf, s0 + 8, 2)
    hour = _digits(buf, s0 + 11, 2)
    minute = _digits(buf, s0 + 14, 2)
    second = _digits(buf, s0 + 17, 2)
    if year < 1 or month < 1 or month > 12 or day < 1 or hour < 0 or hour > 23:
        return -1
    if minute < 0 or minute > 59 or second < 0 or second > 59:
        return -1
    dim = _DAYS[month]
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        dim = 29
    if day > dim:
        return -1
    return hour


@_helper
def _scan_one(buf, i, end, x, r, names, lengths, codes, spans):
    """Fill row r of x and of spans from the object at buf[i:end]; index of its closing
    brace or -1."""
    i = _ws(buf, i, end)
    if i >= end or buf[i] != 123:
        return -1
    i += 1
    seen = 0
    code = -1
    known = False  # the key was recognised by its word after the previous value
    while True:
        if not known:
            i = _ws(buf, i, end)
            if i >= end or buf[i] != 34:
                return -1
            code, k1 = _v_key(buf, i + 1, end)  # 28 of the ~34 keys: skip the general lookup
            if k1 < 0:
                k1 = _string_end(buf, i + 1, end)
                if k1 <= i + 1:
                    return -1
                code = _field_code(buf, i + 1, k1, names, lengths, codes)
            if code == F_RESERVED:
                return -1
            i = _ws(buf, k1 + 1, end)
            if i >= end or buf[i] != 58:
                return -1
            i += 1
        known = False
        i = _ws(buf, i, end)
        if i >= end:
            return -1
        b = buf[i]
        if b == 34:
            s1 = _string_end(buf, i + 1, end)
            if s1 < 0:
                return -1
            if code == F_TIMESTAMP:
                hour = _utc_hour(buf, i + 1, s1)
                if hour < 0:
                    return -1
                x[r, HOUR] = hour
                spans[r, 0] = i + 1
                spans[r, 1] = s1
            elif code == F_MERCHANT:
                spans[r, 2] = i + 1
                spans[r, 3] = s1
            elif code == F_TXID or code == F_CARD:
                if s1 == i + 1:
                    return -1
            elif code >= 0:
                return -1
            i = s1 + 1
        elif b == 45 or 48 <= b <= 57:
            i, value, is_int = _number(buf, i, end)
            if i < 0:
                return -1
            if code >= 0:
                if code <= AMOUNT:
                    f = np.float32(value)
                    if not np.isfinite(f):
                        return -1
                    if code == AMOUNT and not 0.0 <= value <= MAX_AMOUNT:
                        return -1
                    x[r, code] = f
                elif code != F_LABEL or not is_int:
                    return -1
        elif b == 110:  # null: only the optional label may be null
            if i + 4 > end or buf[i + 1] != 117 or buf[i + 2] != 108 or buf[i + 3] != 108:
                return -1
            if code >= 0 and code != F_LABEL:
                return -1
            i += 4
        elif b == 116 and code < 0:  # true, in an unknown field
            if i + 4 > end or buf[i + 1] != 114 or buf[i + 2] != 117 or buf[i + 3] != 101:
                return -1
            i += 4
        elif b == 102 and code < 0:  # false, in an unknown field
            if (i + 5 > end or buf[i + 1] != 97 or buf[i + 2] != 108 or buf[i + 3] != 115
                    or buf[i + 4] != 101):
                return -1
            i += 5
        else:
            return -1
        if code >= 0:
            bit = np.int64(1) << code
            if seen & bit:
                return -1
            seen |= bit
        if 0 <= code < N_V - 1 and i + 8 <= end:
            # the usual order: `,"V<n+1>":` in one 8-byte compare instead of ~10 byte tests
            if _word(buf, i) & _NEXT_MASK[code] == _NEXT_KEY[code]:
                i += _NEXT_LEN[code]
                code += 1
                known = True
                continue
        i = _ws(buf, i, end)
        if i >= end:
            return -1
        if buf[i] == 44:
            i += 1
            continue
        if buf[i] != 125:
            return -1
        close = i
        if _ws(buf, i + 1, end) != end or (seen & REQUIRED_MASK) != REQUIRED_MASK:
            return -1
        return close


@_jit
def scan_batch(buf, lengths, max_bytes, x, starts, close, status, spans, names, key_lengths,
               codes):
    """Scan every row of buf (the values joined, lengths int64 per row) into x.

    Writes starts (each row's offset in buf), close (the index of its final `}`), status
    (OK, SLOW: the msgspec path must judge it, TOO_LARGE: longer than max_bytes) and spans
    (n, 4): where the contents of an OK row's `timestamp` and `merchant_category` strings
    begin and end in buf (no escapes in them: the per-card state reads them from there;
    spans[r, 0] is -1 for a row that is not OK); returns the number of rows that are not OK.
    """
    not_ok = 0
    start = 0
    for r in range(lengths.shape[0]):
        end = start + lengths[r]
        starts[r] = start
        close[r] = -1
        if lengths[r] > max_bytes:
            status[r] = TOO_LARGE
            spans[r, 0] = -1
            not_ok += 1
        else:
            c = _scan_one(buf, start, end, x, r, names, key_lengths, codes, spans)
            if c < 0:
                status[r] = SLOW
                spans[r, 0] = -1
                not_ok += 1
            else:
                status[r] = OK
                close[r] = c
        start = end
    return not_ok


@_helper
def _duplicate_in(buf, i, n, names, key_lengths, codes):
    seen = 0
    depth = 0
    expect_key = False
    while i < n:
        b = buf[i]
        if b == 34:
            j = i + 1
            escaped = False
            while j < n and buf[j] != 34:  # valid JSON: every string is closed
                if buf[j] == 92:
                    escaped = True
                    j += 1
                j += 1
            if depth == 1 and expect_key:
                if escaped:
                    return ESCAPED_KEY
                code = _field_code(buf, i + 1, j, names, key_lengths, codes) if j > i + 1 else -1
                if 0 <= code <= F_LABEL:
                    bit = np.int64(1) << code
                    if seen & bit:
                        return code
                    seen |= bit
                expect_key = False
            i = j + 1
            continue
        if b == 123 or b == 91:
            depth += 1
            expect_key = b == 123 and depth == 1
        elif b == 125 or b == 93:
            depth -= 1
        elif b == 44 and depth == 1:
            expect_key = True
        i += 1
    return -1


@_helper
def _too_deep(buf, i, n):
    """Whether arrays and objects in buf[i:n] nest deeper than MAX_DEPTH (brackets inside
    strings do not count)."""
    depth = 0
    while i < n:
        b = buf[i]
        if b == 34:
            i += 1
            while i < n and buf[i] != 34:
                if buf[i] == 92:
                    i += 1
                i += 1
        elif b == 123 or b == 91:
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif b == 125 or b == 93:
            depth -= 1
        i += 1
    return False


@_jit
def duplicate_field(buf, names, key_lengths, codes):
    """Code of the first contract field named twice at the top level of buf, a JSON object
    that msgspec has already validated; -1 if none; ESCAPED_KEY if a top-level key has an
    escape (this byte walk does not unescape: the caller judges those rare rows itself);
    TOO_DEEP, whether valid or not, if it nests deeper than MAX_DEPTH."""
    if _too_deep(buf, 0, buf.shape[0]):
        return TOO_DEEP
    return _duplicate_in(buf, 0, buf.shape[0], names, key_lengths, codes)


@_jit
def duplicate_fields(buf, starts, lengths, rows, out, names, key_lengths, codes):
    """duplicate_field of each row in `rows` of a joined batch, into out (one call per batch:
    a numba call costs more than the walk of a row)."""
    for k in range(rows.shape[0]):
        r = rows[k]
        end = starts[r] + lengths[r]
        out[k] = TOO_DEEP if _too_deep(buf, starts[r], end) else _duplicate_in(buf, starts[r], end, names,
                                                                              key_lengths, codes)
