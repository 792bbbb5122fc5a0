"""Decode a batch of raw transaction values straight into the feature matrix.

Fast path: the values are joined into one buffer and a numba kernel (core._jsonscan) writes
V1..V28, amount and hour of day into a preallocated float32 matrix: no Python object per event.
Rows the kernel does not vouch for go one by one through msgspec (one reused Decoder per
process), which either decodes them or gives the precise dead-letter reason. Bad input never
raises: it becomes a reason string "<kind>: <detail>" (kinds in core.schema.DEAD_KINDS).
"""

import json
import logging
import re
from collections import Counter
from datetime import datetime

import msgspec
import numpy as np

from core import _jsonscan
from core.features import AMOUNT, HOUR, N_V, empty_matrix
from core.schema import (
    BAD_JSON, BAD_TIMESTAMP, BAD_UTF8, DUPLICATE_FIELD, MAX_AMOUNT, MAX_VALUE_BYTES,
    MISSING_FIELD, NON_FINITE, NOT_OBJECT, OUT_OF_RANGE, RESERVED_FIELD, RESERVED_FIELD_NAMES,
    TOO_LARGE, V_FIELDS, WRONG_TYPE, Transaction,
)

__all__ = ["Decoded", "decode_batch", "decode_one", "number_problem", "utc_hour"]

# Transaction plus the output field names, typed so that msgspec rejects their presence: an
# input that already carries `fraud_score` would produce an ambiguous duplicate key downstream.
_Guarded = msgspec.defstruct(
    "_Guarded", [(name, msgspec.UnsetType, msgspec.UNSET) for name in RESERVED_FIELD_NAMES],
    bases=(Transaction,), kw_only=True, frozen=True, gc=False, module=__name__,
)
_DECODER = msgspec.json.Decoder(_Guarded)
_KEYS = _jsonscan.key_table()
log = logging.getLogger(__name__)
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z")
_F32_MAX = float(np.finfo(np.float32).max)
_JSON_WS = b" \t\r\n"
_BYTES = (bytes, bytearray, memoryview)


class Decoded:
    """A decoded batch.

    x        float32 (n, N_FEATURES): raw columns (V1..V28, amount, hour) filled for good rows
    good     int64 indices of the rows that decoded, ascending
    dead     [(index, reason)] for the others, ascending
    buf, starts, close   the joined bytes, each row's start and the index of its final `}`
                         (what core.encode splices the score fields into)
    spans    int64 (n, 4): where the `timestamp` and `merchant_category` strings of a row
             the kernel read lie in buf (core._jsonscan.scan_batch); spans[r, 0] is -1 for the
             other rows, and the good ones among them are in `slow`
    slow     {index: core.schema.Transaction} for the good rows msgspec decoded
    """

    __slots__ = ("x", "good", "dead", "buf", "starts", "close", "spans", "slow")

    def __init__(self, x, good, dead, buf, starts, close, spans, slow):
        self.x, self.good, self.dead = x, good, dead
        self.buf, self.starts, self.close = buf, starts, close
        self.spans, self.slow = spans, slow


def utc_hour(timestamp: str) -> int | str:
    """Hour of day of an ISO-8601 UTC `...Z` timestamp, or the dead-letter reason."""
    if not isinstance(timestamp, str) or _TIMESTAMP.fullmatch(timestamp) is None:
        return f"{BAD_TIMESTAMP}: `timestamp` {_show(timestamp)} is not YYYY-MM-DDTHH:MM:SS[.f]Z"
    t = timestamp
    try:
        datetime(int(t[:4]), int(t[5:7]), int(t[8:10]), int(t[11:13]), int(t[14:16]),
                 int(t[17:19]))
    except ValueError as exc:
        return f"{BAD_TIMESTAMP}: `timestamp` {_show(timestamp)}: {exc}"
    return int(t[11:13])


def decode_one(value, row: np.ndarray | None = None):
    """Decode one raw value: a Transaction (its raw features written into `row` when given),
    or the dead-letter reason as a str. Never raises for bad input."""
    return _decode_guarded(value, row, None)


def _decode_guarded(value, row, twice: int | None):
    try:
        return _decode_one(value, row, twice)
    except MemoryError:   # the process's trouble, not the record's: never a dead letter the replay might not make
        raise
    except Exception as exc:   # noqa: BLE001 - a value no rule foresaw: its dead letter says what, never a crash loop
        log.error("a transaction no decoding rule foresaw raised %s (a fraudstream bug: please report it "
                  "with the dead letter)", _show(exc, 200))
        return f"{BAD_JSON}: cannot be decoded ({type(exc).__name__})"


def _decode_one(value, row, twice: int | None):
    # twice: the row's duplicate_field code when the batch has computed it, else None
    if value is None:
        return f"{BAD_JSON}: empty value (null record)"
    if not isinstance(value, _BYTES):
        return f"{BAD_JSON}: value is a {type(value).__name__}, not bytes"
    if len(value) > MAX_VALUE_BYTES:
        return f"{TOO_LARGE}: {len(value)} bytes > {MAX_VALUE_BYTES}"
    if isinstance(value, memoryview):
        value = bytes(value)
    # msgspec checks the UTF-8 only of the strings it decodes: an unknown key or value is
    # skipped unchecked, and the scorer would carry its bytes into fraud-scores as if valid.
    # So the whole value is checked here (the kernel passes only ASCII rows: valid rows on
    # the fast path never get here; an ASCII row costs one isascii() scan).
    if not value.isascii():
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"{BAD_UTF8}: byte {exc.start}"
    if twice is None:
        twice = _jsonscan.duplicate_field(np.frombuffer(value, dtype=np.uint8), *_KEYS)
    if twice == _jsonscan.TOO_DEEP:   # before msgspec, whose recursion would fail near Python's limit
        return f"{BAD_JSON}: nested deeper than {_jsonscan.MAX_DEPTH} levels"
    try:
        tx = _DECODER.decode(value)
    except msgspec.ValidationError as exc:
        return _validation_reason(str(exc))
    except msgspec.DecodeError as exc:
        return _decode_reason(str(exc), value)
    # the kernel declines duplicates, msgspec keeps the last one: judged here
    name = _duplicate_field(value, twice)
    if name is not None:
        return f"{DUPLICATE_FIELD}: `{name}` appears more than once"
    hour = utc_hour(tx.timestamp)
    if isinstance(hour, str):
        return hour
    amount = tx.amount
    problem = number_problem("amount", amount)
    if problem:
        return problem
    vs = [getattr(tx, name) for name in V_FIELDS]
    for name, v in zip(V_FIELDS, vs):
        problem = number_problem(name, v)
        if problem:
            return problem
    if row is not None:
        row[:N_V] = vs
        row[AMOUNT] = amount
        row[HOUR] = hour
    return tx


def number_problem(name: str, value: float) -> str | None:
    """Why `amount` or a V field with this value is a dead letter (None: it is a feature value):
    not finite as a float32, or an amount outside [0, MAX_AMOUNT]."""
    if not -_F32_MAX <= value <= _F32_MAX:   # NaN too
        return (f"{NON_FINITE}: `{name}` {value!r}" if value != value or abs(value) == float("inf")
                else f"{NON_FINITE}: `{name}` {value!r} overflows float32")
    if name == "amount" and not 0.0 <= value <= MAX_AMOUNT:
        return f"{OUT_OF_RANGE}: `amount` {value!r} not in [0, {MAX_AMOUNT:g}]"
    return None


def decode_batch(values) -> Decoded:
    """Decode a sequence of raw values (bytes) into the feature matrix; never raises for
    bad input (a None or non-bytes value is a dead letter like any other)."""
    n = len(values)
    originals = values
    try:
        joined = b"".join(values)
    except TypeError:  # None (a tombstone) or a str among the values
        values = [v if isinstance(v, _BYTES) else b"" for v in values]
        joined = b"".join(values)
    buf = np.frombuffer(joined, dtype=np.uint8)
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
    x = empty_matrix(n)
    starts = np.empty(n, dtype=np.int64)
    close = np.empty(n, dtype=np.int64)
    status = np.empty(n, dtype=np.int8)
    spans = np.empty((n, 4), dtype=np.int64)
    not_ok = _jsonscan.scan_batch(buf, lengths, MAX_VALUE_BYTES, x, starts, close, status,
                                  spans, *_KEYS)
    dead = []
    slow_good = {}
    if not_ok:
        good_mask = status == _jsonscan.OK
        slow = (status != _jsonscan.OK).nonzero()[0]
        twice = np.full(len(slow), -1, dtype=np.int64)
        walk = status[slow] == _jsonscan.SLOW   # not the ones too large to decode at all
        found = np.empty(int(walk.sum()), dtype=np.int64)
        _jsonscan.duplicate_fields(buf, starts, lengths, slow[walk], found, *_KEYS)
        twice[walk] = found
        for r, code in zip(slow.tolist(), twice.tolist()):
            result = _decode_guarded(originals[r], x[r], code)
            if isinstance(result, str):
                dead.append((r, result))
            else:
                good_mask[r] = True
                slow_good[r] = result
                start = int(starts[r])
                end = start + int(lengths[r])
                close[r] = start + len(joined[start:end].rstrip(_JSON_WS)) - 1
        good = good_mask.nonzero()[0]
    else:
        good = np.arange(n, dtype=np.int64)
    return Decoded(x, good, dead, buf, starts, close, spans, slow_good)


# the kernel's field codes -> the contract's names
_FIELD_NAMES = dict(enumerate(V_FIELDS)) | {
    int(code): bytes(name[:n]).decode() for name, n, code in zip(*_KEYS)
    if code != _jsonscan.F_RESERVED}
_CONTRACT_NAMES = frozenset(_FIELD_NAMES.values())


def _duplicate_field(value: bytes, code: int) -> str | None:
    """Name of a contract field that a valid JSON object names twice, or None (code: the
    value's duplicate_field)."""
    if code == -1:
        return None
    if code != _jsonscan.ESCAPED_KEY:
        return _FIELD_NAMES[code]
    # keys unescaped, kept twice; numbers left as text (an int of over 4,300 digits would raise)
    top = json.loads(value, object_pairs_hook=lambda pairs: pairs, parse_int=len, parse_float=len)
    counts = Counter(k for k, _ in top if k in _CONTRACT_NAMES)
    return next((k for k, c in counts.items() if c > 1), None)


def _show(value, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


_MISSING = re.compile(r"Object missing required field `([^`]+)`")
_AT = re.compile(r"^(.*) - at `\$\.?(.*)`$")
_EXPECTED = re.compile(r"Expected `([^`]+)`, got `([^`]+)`")
_BYTE = re.compile(r"\(byte (\d+)\)")
_TICKS = re.compile(r"`([^`]*)`")


def _validation_reason(message: str) -> str:
    missing = _MISSING.fullmatch(message)
    if missing:
        return f"{MISSING_FIELD}: `{missing.group(1)}`"
    at = _AT.match(message)
    if at is None:  # the top level itself
        expected = _EXPECTED.match(message)
        if expected:
            return f"{NOT_OBJECT}: got {expected.group(2)}"
        return f"{WRONG_TYPE}: {message}"
    problem, field = at.group(1), at.group(2)
    if field in RESERVED_FIELD_NAMES:
        return f"{RESERVED_FIELD}: `{field}` is written by the scorer, not the producer"
    expected = _EXPECTED.match(problem)
    if expected:
        return f"{WRONG_TYPE}: `{field}` expected {expected.group(1)}, got {expected.group(2)}"
    if problem.startswith("Number out of range"):
        return f"{NON_FINITE}: `{field}` number out of range"
    detail = _TICKS.sub(r"\1", problem)
    return f"{OUT_OF_RANGE}: `{field}` {detail[:1].lower()}{detail[1:]}"


def _decode_reason(message: str, value) -> str:
    byte = _BYTE.search(message)
    where = f" at byte {byte.group(1)}" if byte else ""
    if message == "Input data was truncated":
        return f"{BAD_JSON}: truncated after {len(value)} bytes" if len(value) else \
            f"{BAD_JSON}: empty value"
    detail = message.removeprefix("JSON is malformed: ")
    detail = _BYTE.sub("", detail).strip()
    return f"{BAD_JSON}: {detail}{where}"
