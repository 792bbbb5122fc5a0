"""Record batches built by hand, parsed read_committed by core.recordbatch (no Kafka)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from core.partreader import Chunk
from core.recordbatch import Malformed, flatten, parse_records
from core.snapshot import MARKER_KEY, encode_marker, take_markers


def _varint(v: int) -> bytes:
    z = (v << 1) ^ (v >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _blob(b: bytes | None) -> bytes:
    return _varint(-1) if b is None else _varint(len(b)) + b


def _record(delta: int, key: bytes | None, value: bytes | None, headers=()) -> bytes:
    body = b"\x00" + _varint(3) + _varint(delta) + _blob(key) + _blob(value) + _varint(len(headers))
    for hk, hv in headers:
        body += _blob(hk) + _blob(hv)
    return _varint(len(body)) + body


def _batch(base: int, records, *, pid: int = -1, txn: bool = False, control: bool = False,
           codec: int = 0, last_delta: int | None = None, magic: int = 2) -> bytes:
    recs = b"".join(_record(*r) for r in records)
    if codec == 1:
        recs = gzip.compress(recs)
    elif codec == 3:
        import lz4.frame
        recs = lz4.frame.compress(recs)
    elif codec:
        recs = b"\x00" * 8
    attrs = codec | (0x10 if txn else 0) | (0x20 if control else 0)
    if last_delta is None:
        last_delta = max((r[0] for r in records), default=0)
    rest = struct.pack(">ibIhiqqqhii", 0, magic, 0, attrs, last_delta, 1000, 1000, pid, 0, 0,
                       len(records)) + recs
    return struct.pack(">qi", base, len(rest)) + rest


def _marker(base: int, pid: int, commit: bool) -> bytes:
    return _batch(base, [(0, struct.pack(">hh", 0, 1 if commit else 0), struct.pack(">hi", 0, 5))],
                  pid=pid, txn=True, control=True)


def _rows(r) -> list:
    data = r.data.tobytes()
    out = []
    for o, kp, kl, vp, vl in zip(r.offsets.tolist(), r.kpos.tolist(), r.klen.tolist(), r.vpos.tolist(),
                                 r.vlen.tolist()):
        out.append((o, None if kl < 0 else data[kp:kp + kl], None if vl < 0 else data[vp:vp + vl]))
    return out


def test_records_tombstones_null_keys_headers_and_compaction_gaps():
    raw = _batch(10, [(0, b"a", b"1"), (2, b"b", None), (5, None, b"3", [(b"h", b"x")])], last_delta=7)
    r = parse_records(raw, 10, 100)
    assert _rows(r) == [(10, b"a", b"1"), (12, b"b", None), (15, None, b"3")]
    assert r.position == 18   # past the batch's last offset, which compaction emptied


def test_fetch_offset_inside_a_batch_and_the_end_bound():
    raw = _batch(0, [(i, b"k%d" % i, b"v%d" % i) for i in range(5)]) + _batch(5, [(0, b"k5", b"v5")])
    assert [o for o, _, _ in _rows(parse_records(raw, 2, 5))] == [2, 3, 4]
    assert parse_records(raw, 2, 5).position == 6


def test_read_committed_drops_aborted_transactions_and_markers():
    raw = b"".join([
        _batch(0, [(0, b"c1", b"committed")], pid=7, txn=True),
        _batch(1, [(0, b"a1", b"aborted")], pid=8, txn=True),
        _batch(2, [(0, b"plain", b"no-txn")]),
        _batch(3, [(0, b"c2", b"committed")], pid=7, txn=True),
        _marker(4, 7, commit=True),
        _batch(5, [(0, b"a2", b"aborted")], pid=8, txn=True),
        _marker(6, 8, commit=False),
        _batch(7, [(0, b"c3", b"after-abort")], pid=8, txn=True),   # pid 8's next transaction
        _marker(8, 8, commit=True),
    ])
    r = parse_records(raw, 0, 100, aborted=[(8, 1)])
    assert [k for _, k, _ in _rows(r)] == [b"c1", b"plain", b"c2", b"c3"]
    assert r.position == 9
    # without the aborted list (read from after the abort) pid 8 is committed data
    assert [k for _, k, _ in _rows(parse_records(raw, 5, 100))] == [b"a2", b"c3"]


def test_a_truncated_last_batch_waits_for_the_next_fetch():
    whole = _batch(0, [(0, b"a", b"1")])
    raw = whole + _batch(1, [(0, b"b", b"2")])[:-3]
    r = parse_records(raw, 0, 100)
    assert _rows(r) == [(0, b"a", b"1")] and r.position == 1
    assert parse_records(b"", 4, 100).position == 4


@pytest.mark.parametrize("codec", [1, 3])
def test_compressed_batches_read_as_the_uncompressed_ones(codec):
    recs = [(i, b"key-%d" % i, b"value-%d" % i * 10) for i in range(50)]
    plain = _batch(0, recs) + _batch(50, [(0, b"z", None)])
    packed = _batch(0, recs, codec=codec) + _batch(50, [(0, b"z", None)])
    assert _rows(parse_records(packed, 0, 100)) == _rows(parse_records(plain, 0, 100))


def test_it_stops_at_what_it_cannot_read_and_says_why():
    raw = _batch(0, [(0, b"a", b"1")]) + _batch(1, [(0, b"b", b"2")], codec=2) + _batch(2, [(0, b"c", b"3")])
    r = parse_records(raw, 0, 10)
    assert _rows(r) == [(0, b"a", b"1")] and r.position == 1 and "snappy" in r.unreadable
    r = parse_records(_batch(5, [(0, b"a", b"1")], magic=1), 0, 10)
    assert _rows(r) == [] and r.position == 5 and "magic 1" in r.unreadable
    # an aborted transaction's batch is skipped whatever its codec
    raw = _batch(0, [(0, b"x", b"1")], pid=3, txn=True, codec=4) + _marker(1, 3, commit=False)
    r = parse_records(raw, 0, 10, aborted=[(3, 0)])
    assert _rows(r) == [] and r.position == 2 and r.unreadable is None
    bad = bytearray(_batch(0, [(0, b"a", b"1")]))
    bad[61] = 0x7E   # the record's length far past the batch
    with pytest.raises(Malformed, match="offset 0"):
        parse_records(bytes(bad), 0, 10)


def test_chunks_of_records_and_of_values_agree_and_markers_come_out():
    raw = _batch(0, [(0, b"a", b"1"), (1, MARKER_KEY, encode_marker(42, 7.5)), (2, b"b", None)])
    fast = Chunk.of_records(parse_records(raw, 0, 10))
    slow = Chunk(np.arange(3), [b"a", MARKER_KEY, b"b"], 3, values=[b"1", encode_marker(42, 7.5), None])
    for chunk in (fast, slow):
        assert chunk.values()[::2] == [b"1", None]
        cards, (marker, at) = take_markers(chunk, "t", "topic[0]")
        assert (marker.offset, marker.watermark, at) == (42, 7.5, 1)
        assert cards.keys == [b"a", b"b"] and cards.offsets.tolist() == [0, 2]
        data, starts, lengths = cards.flat()
        assert lengths.tolist() == [1, -1] and data[starts[0]] == ord("1")
    data, starts, lengths = flatten([b"xy", None, b"", b"z"])
    assert data.tobytes() == b"xyz" and starts.tolist() == [0, 2, 2, 2] and lengths.tolist() == [2, -1, 0, 1]


def test_the_fast_reader_serves_plaintext_only():
    from core.partreader import fast_refusal

    assert fast_refusal({}) is None
    assert fast_refusal({"security.protocol": "PLAINTEXT", "client.id": "x"}) is None
    assert "sasl_ssl" in fast_refusal({"security.protocol": "SASL_SSL"})
    assert "ssl.ca.location" in fast_refusal({"ssl.ca.location": "/ca.pem"})
    assert "sasl.mechanism" in fast_refusal({"sasl.mechanism": "PLAIN"})


def test_keys_of_one_length_and_the_odd_ones_keep_their_rows():
    keys = [b"k%02d\x00" % i for i in range(150)]   # a trailing zero byte must stay
    keys[7], keys[80] = MARKER_KEY, None
    raw = _batch(0, [(i, k, b"v") for i, k in enumerate(keys)])
    chunk = Chunk.of_records(parse_records(raw, 0, 1000))
    assert chunk.keys == keys
    assert Chunk.of_records(parse_records(raw, 100, 1000)).keys == keys[100:]


def test_key_columns_nulls_and_markers_without_key_objects():
    # what a restore asks of a chunk (core.cardstate): no bytes object per key is made for it
    keys = [b"ab", b"a", b"", MARKER_KEY[:-1] + b"x", b"abc", None, MARKER_KEY]
    raw = _batch(0, [(i, k, b"v") for i, k in enumerate(keys)])
    fast = Chunk.of_records(parse_records(raw, 0, 100))
    slow = Chunk(np.arange(7), list(keys), 7, values=[b"v"] * 7)
    for chunk in (fast, slow):
        assert chunk.null_key_row() == 5 and chunk.has_key(MARKER_KEY) and not chunk.has_key(b"abcd")
        rest = chunk.without([5])
        assert rest.null_key_row() == -1 and rest.has_key(b"") and rest.has_key(MARKER_KEY)
        kc = rest.key_column()
        assert [kc.data[s:s + n].tobytes() for s, n in zip(kc.starts.tolist(), kc.lens.tolist())] == \
            keys[:5] + [MARKER_KEY]
    assert fast._keys is None   # none of the above made the key objects
