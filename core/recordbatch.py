"""Kafka record batches (magic 2) parsed into flat arrays, read_committed, no object per record.

The fast changelog reader (core.fetchlog) gets a partition's raw record-set bytes from a Fetch
response; `parse_records` turns them into one Records: the records' offsets, and where each
key and value lies in one buffer (length -1: null), for the kept records only:

- read_committed exactly as the Java consumer (Fetcher/CompletedFetch): the response's aborted
  transactions (producer id, first offset) become "aborted" for a producer once a batch reaches
  their first offset; a transactional batch of an aborted producer is dropped; that producer's
  ABORT marker ends it; control batches (the markers) are never records. The broker itself
  stops a read_committed fetch at the last stable offset.
- records before the fetch offset (the broker returns whole batches) or at/after `end` are
  dropped; gaps in offsets (compaction) need nothing: each record carries its offset delta,
  and an emptied batch still moves the position past its last offset.
- a batch its producer compressed is decompressed whole: gzip (zlib) and lz4 (the lz4
  package, when installed). At a batch it cannot read (snappy, zstd, lz4 without the
  package, a magic other than 2) it stops: `position` is that batch's offset, `unreadable`
  says why, and the caller goes on with librdkafka from there.
- a truncated last batch (the fetch's size limit) is left for the next fetch: `position` is
  the offset after the last whole batch.

CRCs are not checked, as librdkafka does not by default (check.crcs=false), which is the
reader this one replaces: the broker checked each batch's CRC when it was produced, and a card
record damaged after that still fails the state decoder (core.velocity), which stops the slot.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

import numba as nb
import numpy as np

__all__ = ["Records", "Malformed", "parse_records", "scan_batches", "flatten", "pieces"]

_jit = nb.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy", _nrt=False)

HEADER = 61          # baseOffset .. recordsCount
# columns of scan_batches' output
B_POS, B_SIZE, B_BASE, B_LAST, B_ATTRS, B_PID, B_COUNT, B_CONTROL, B_MAGIC = range(9)
_NB = 9
COMPRESSION, TRANSACTIONAL, CONTROL = 0x07, 0x10, 0x20
ABORT = 0


class Malformed(Exception):
    """Bytes that are not a well-formed record batch."""


class Records(NamedTuple):
    """Kept records in offset order: key k of record i is data[kpos[i]:kpos[i] + klen[i]]
    (klen -1: null), the same for values; `position` is where the next fetch starts."""

    offsets: np.ndarray
    data: np.ndarray      # uint8
    kpos: np.ndarray
    klen: np.ndarray
    vpos: np.ndarray
    vlen: np.ndarray
    position: int
    unreadable: str | None = None   # why the batch at `position` cannot be read here


@_jit
def _be(buf, pos, nbytes):
    # big-endian; 8 bytes wrap into int64 as two's complement, i.e. signed
    v = np.int64(0)
    for b in range(nbytes):
        v = (v << 8) | np.int64(buf[pos + b])
    return v


@_jit
def _signed(v, bits):
    if v >= np.int64(1) << (bits - 1):
        return v - (np.int64(1) << bits)
    return v


@_jit
def _varint(buf, pos, end):
    """(zigzag-decoded value, next position); next position -1 when it runs past end."""
    raw = np.uint64(0)
    shift = 0
    while pos < end and shift < 64:
        b = buf[pos]
        pos += 1
        raw |= np.uint64(b & 0x7F) << np.uint64(shift)
        if b < 0x80:
            return np.int64(raw >> np.uint64(1)) ^ -np.int64(raw & np.uint64(1)), pos
        shift += 7
    return np.int64(0), np.int64(-1)


@_jit
def scan_batches(buf, out):
    """The headers of the whole batches in buf, one row of out each (B_* columns; B_CONTROL:
    the control record's type, -1 for a data batch). Returns (batches, bytes used); a
    truncated last batch is not counted."""
    n = 0
    pos = 0
    size = buf.shape[0]
    while pos + 17 <= size and n < out.shape[0]:
        length = _signed(_be(buf, pos + 8, 4), 32)
        total = 12 + length
        if length < HEADER - 12 or pos + total > size:
            break
        out[n, B_POS] = pos
        out[n, B_SIZE] = total
        out[n, B_BASE] = _be(buf, pos, 8)
        out[n, B_MAGIC] = buf[pos + 16]
        out[n, B_ATTRS] = _be(buf, pos + 21, 2)
        out[n, B_LAST] = out[n, B_BASE] + _signed(_be(buf, pos + 23, 4), 32)
        out[n, B_PID] = _be(buf, pos + 43, 8)
        out[n, B_COUNT] = _signed(_be(buf, pos + 57, 4), 32)
        out[n, B_CONTROL] = -1
        if out[n, B_ATTRS] & CONTROL and out[n, B_COUNT] > 0 and not out[n, B_ATTRS] & COMPRESSION:
            # the control record's key: version i16, type i16 (0 abort, 1 commit)
            p, end = pos + HEADER, pos + total
            _, p = _varint(buf, p, end)            # record length
            if p >= 0 and p < end:
                p += 1                               # attributes
                _, p = _varint(buf, p, end)        # timestamp delta
            if p >= 0:
                _, p = _varint(buf, p, end)        # offset delta
            if p >= 0:
                klen, p = _varint(buf, p, end)
                if p >= 0 and klen >= 4 and p + 4 <= end:
                    out[n, B_CONTROL] = _be(buf, p + 2, 2)
        n += 1
        pos += total
    return n, pos


@_jit
def _parse(src, starts, ends, counts, bases, lo, hi, off, kpos, klen, vpos, vlen):
    """The records of the sections [starts[b], ends[b]) (counts[b] records at base offset
    bases[b]) with lo <= offset < hi into the output arrays. Returns (records, -1), or
    (records so far, b) at the first malformed section b."""
    n = 0
    for b in range(starts.shape[0]):
        p, end = starts[b], ends[b]
        for _ in range(counts[b]):
            length, p = _varint(src, p, end)
            if p < 0 or length < 0 or p + length > end:
                return n, b
            rend = p + length
            p += 1                                   # attributes
            _, p = _varint(src, p, rend)           # timestamp delta
            if p < 0:
                return n, b
            delta, p = _varint(src, p, rend)
            if p < 0:
                return n, b
            kl, p = _varint(src, p, rend)
            if p < 0 or kl < -1 or p + max(kl, 0) > rend:
                return n, b
            kp = p
            p += max(kl, 0)
            vl, p = _varint(src, p, rend)
            if p < 0 or vl < -1 or p + max(vl, 0) > rend:
                return n, b
            vp = p
            p = rend                                 # headers: not needed
            o = bases[b] + delta
            if lo <= o < hi:
                off[n] = o
                kpos[n] = kp
                klen[n] = kl
                vpos[n] = vp
                vlen[n] = vl
                n += 1
    return n, -1


def _committed(batches: np.ndarray, aborted) -> np.ndarray:
    """Which batches hold read_committed records (see the module docstring)."""
    keep = np.zeros(batches.shape[0], dtype=np.bool_)
    pending = sorted(((int(first), int(pid)) for pid, first in aborted), reverse=True)
    now_aborted: set[int] = set()
    for i, (attrs, pid, last, control) in enumerate(
            batches[:, [B_ATTRS, B_PID, B_LAST, B_CONTROL]].tolist()):
        if pid >= 0:
            while pending and pending[-1][0] <= last:
                now_aborted.add(pending.pop()[1])
            if attrs & CONTROL and control == ABORT:
                now_aborted.discard(pid)
            elif attrs & TRANSACTIONAL and pid in now_aborted:
                continue
        if not attrs & CONTROL:
            keep[i] = True
    return keep


def _first_unreadable(batches: np.ndarray, keep: np.ndarray) -> tuple[int, str] | None:
    """(index, reason) of the first batch this parser cannot read, if any."""
    for i, (magic, codec) in enumerate(zip(batches[:, B_MAGIC].tolist(),
                                            (batches[:, B_ATTRS] & COMPRESSION).tolist())):
        if magic != 2:
            return i, f"record batches of magic {magic} (only 2 is read)"
        if keep[i] and codec and codec not in _decoders():
            return i, (f"batches compressed with codec {codec} ({_CODECS.get(codec, 'unknown')}"
                       f"{', the lz4 package is not installed' if codec == 3 else ''})")
    return None


def _decoders() -> set[int]:
    try:
        import lz4.frame  # noqa: F401
        return {1, 3}
    except ImportError:
        return {1}


def _decompress(codec: int, data) -> bytes:
    try:
        if codec == 1:
            return zlib.decompress(data, 47)           # gzip (or zlib) header
        import lz4.frame   # codec 3: _first_unreadable checked it is installed
        return lz4.frame.decompress(data)
    except (zlib.error, RuntimeError, ValueError) as exc:
        raise Malformed(f"a batch does not decompress: {exc}") from None


_CODECS = {1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def parse_records(raw, fetch_offset: int, end: int, aborted=()) -> Records:
    """The read_committed records of `raw` (a Fetch response's record set, bytes-like) with
    fetch_offset <= offset < end. `aborted`: the response's (producer id, first offset)."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    batches = np.empty((buf.shape[0] // HEADER + 1, _NB), dtype=np.int64)
    nb_, _ = scan_batches(buf, batches)
    batches = batches[:nb_]
    keep = _committed(batches, aborted)
    stop = _first_unreadable(batches, keep)
    if stop is not None:   # the records before it, then librdkafka from there
        at = stop[0]
        position = max(fetch_offset, int(batches[at, B_BASE]))
        batches, keep = batches[:at], keep[:at]
    elif nb_:
        position = max(fetch_offset, int(batches[-1, B_LAST]) + 1)
    else:
        position = fetch_offset
    kept = batches[keep]
    starts, ends = kept[:, B_POS] + HEADER, kept[:, B_POS] + kept[:, B_SIZE]
    codecs = kept[:, B_ATTRS] & COMPRESSION
    src = buf
    if codecs.any():   # one buffer of the sections, the compressed ones decompressed
        parts, at = [], 0
        view = memoryview(raw).cast("B")
        for i, (s, e, codec) in enumerate(zip(starts.tolist(), ends.tolist(), codecs.tolist())):
            part = view[s:e] if codec == 0 else _decompress(codec, view[s:e])
            parts.append(part)
            starts[i], ends[i] = at, at + len(part)
            at += len(part)
        src = np.frombuffer(b"".join(parts), dtype=np.uint8)
    total = int(np.maximum(kept[:, B_COUNT], 0).sum())
    cols = [np.empty(total, dtype=np.int64) for _ in range(5)]
    n, bad = _parse(src, starts, ends, np.maximum(kept[:, B_COUNT], 0), kept[:, B_BASE],
                    fetch_offset, end, *cols)
    if bad >= 0:
        raise Malformed(f"the batch at offset {int(kept[bad, B_BASE])} has a malformed record")
    off, kpos, klen, vpos, vlen = (c[:n] for c in cols)
    return Records(off, src, kpos, klen, vpos, vlen, position, stop[1] if stop else None)


def flatten(values: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uint8 buffer, starts, lengths) of a list of bytes values, None as length -1."""
    n = len(values)
    if None in values:
        lengths = np.array([-1 if v is None else len(v) for v in values], dtype=np.int64)
        data = b"".join([v for v in values if v])
    else:
        lengths = np.fromiter(map(len, values), np.int64, n)
        data = b"".join(values)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(np.maximum(lengths[:-1], 0), out=starts[1:])
    return np.frombuffer(data, dtype=np.uint8), starts, lengths


def pieces(raw: bytes, ends: np.ndarray, starts: np.ndarray | None = None) -> list[bytes]:
    """raw[starts[i]:ends[i]] for every i as bytes, in one C-level pass (starts None: each
    piece starts where the one before it ended, the first at 0)."""
    stops = ends.tolist()
    begins = [0] + stops[:-1] if starts is None else starts.tolist()
    return list(map(raw.__getitem__, map(slice, begins, stops)))
