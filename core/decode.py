"""Decode a batch of raw transaction values straight into the feature matrix.

Fast path: the values are joined into one buffer and a numba kernel (core._jsonscan) writes
V1..V28, amount and hour of day into a preallocated float32 matrix: no Python object per event.
Rows the kernel does not vouch for go one by one through msgspec (one reused Decoder per
process), which either decodes them or gives the precise dead-letter reason. Bad input never
raises: it becomes a reason string "<kind>: <detail>" (kinds in core.schema.DEAD_KINDS).
"""

import re
from datetime import datetime

import msgspec
import numpy as np

from core import _jsonscan
from core.features import AMOUNT, HOUR, N_V, empty_matrix
from core.schema import (
    BAD_JSON, BAD_TIMESTAMP, BAD_UTF8, MAX_AMOUNT, MAX_VALUE_BYTES, MISSING_FIELD, NON_FINITE,
    NOT_OBJECT, OUT_OF_RANGE, RESERVED_FIELD, RESERVED_FIELD_NAMES, TOO_LARGE, V_FIELDS,
    WRONG_TYPE, Transaction,
)

__all__ = ["Decoded", "decode_batch", "decode_one", "utc_hour"]

# Transaction plus the output field names, typed so that msgspec rejects their presence: an
# input that already carries `fraud_score` would produce an ambiguous duplicate key downstream.
_Guarded = msgspec.defstruct(
    "_Guarded", [(name, msgspec.UnsetType, msgspec.UNSET) for name in RESERVED_FIELD_NAMES],
    bases=(Transaction,), kw_only=True, frozen=True, gc=False, module=__name__,
)
_DECODER = msgspec.json.Decoder(_Guarded)
_KEYS = _jsonscan.key_table()
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
    """

    __slots__ = ("x", "good", "dead", "buf", "starts", "close")

    def __init__(self, x, good, dead, buf, starts, close):
        self.x, self.good, self.dead = x, good, dead
        self.buf, self.starts, self.close = buf, starts, close


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
    if value is None:
        return f"{BAD_JSON}: empty value (null record)"
    if not isinstance(value, _BYTES):
        return f"{BAD_JSON}: value is a {type(value).__name__}, not bytes"
    if len(value) > MAX_VALUE_BYTES:
        return f"{TOO_LARGE}: {len(value)} bytes > {MAX_VALUE_BYTES}"
    try:
        tx = _DECODER.decode(value)
    except msgspec.ValidationError as exc:
        return _validation_reason(str(exc))
    except msgspec.DecodeError as exc:
        # msgspec >= 0.23 says "Invalid UTF-8 encoded string" here (older ones raised
        # UnicodeDecodeError) without the position
        if str(exc).startswith("Invalid UTF-8"):
            return _utf8_reason(value)
        return _decode_reason(str(exc), value)
    except UnicodeDecodeError:  # msgspec's offset is within the string: find the real one
        return _utf8_reason(value)
    hour = utc_hour(tx.timestamp)
    if isinstance(hour, str):
        return hour
    amount = tx.amount
    if not -_F32_MAX <= amount <= _F32_MAX:
        return f"{NON_FINITE}: `amount` {amount!r} overflows float32"
    if not 0.0 <= amount <= MAX_AMOUNT:
        return f"{OUT_OF_RANGE}: `amount` {amount!r} not in [0, {MAX_AMOUNT:g}]"
    vs = [getattr(tx, name) for name in V_FIELDS]
    for name, v in zip(V_FIELDS, vs):
        if not -_F32_MAX <= v <= _F32_MAX:
            return f"{NON_FINITE}: `{name}` {v!r} overflows float32"
    if row is not None:
        row[:N_V] = vs
        row[AMOUNT] = amount
        row[HOUR] = hour
    return tx


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
    not_ok = _jsonscan.scan_batch(buf, lengths, MAX_VALUE_BYTES, x, starts, close, status,
                                  *_KEYS)
    dead = []
    if not_ok:
        good_mask = status == _jsonscan.OK
        for r in (status != _jsonscan.OK).nonzero()[0].tolist():
            result = decode_one(originals[r], x[r])
            if isinstance(result, str):
                dead.append((r, result))
            else:
                good_mask[r] = True
                start = int(starts[r])
                end = start + int(lengths[r])
                close[r] = start + len(joined[start:end].rstrip(_JSON_WS)) - 1
        good = good_mask.nonzero()[0]
    else:
        good = np.arange(n, dtype=np.int64)
    return Decoded(x, good, dead, buf, starts, close)


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


def _utf8_reason(value) -> str:
    try:
        bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"{BAD_UTF8}: byte {exc.start}"
    return f"{BAD_UTF8}: in a string"


def _decode_reason(message: str, value) -> str:
    byte = _BYTE.search(message)
    where = f" at byte {byte.group(1)}" if byte else ""
    if message == "Input data was truncated":
        return f"{BAD_JSON}: truncated after {len(value)} bytes" if len(value) else \
            f"{BAD_JSON}: empty value"
    detail = message.removeprefix("JSON is malformed: ")
    detail = _BYTE.sub("", detail).strip()
    return f"{BAD_JSON}: {detail}{where}"
