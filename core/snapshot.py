"""Snapshots of the per-card state: the marker record that dates one, and the input replay that
brings a store restored from it up to the committed input offset.

A snapshot of partition p is written inside one of p's batch transactions (core.cardstate):
the records of the cards changed or evicted since p's previous snapshot, then one marker
record under MARKER_KEY whose value says which input offset S the state is at (the offset
that transaction commits for p) and the partition's watermark then. Everything in p's
changelog up to and including its last committed marker is therefore the state at S exactly.

MARKER_KEY is longer than core.velocity.MAX_CARD_KEY_BYTES: a transaction whose card key is
that long is scored as a card with no history and never kept (core.velocity.apply_bounded), so no card's state can ever be
written under the marker's key, and the hot path pays nothing to tell them apart.

Size. A card record is at most MAX_STATE_RECORD_BYTES by librdkafka's count (a key of at most
MAX_CARD_KEY_BYTES, a value of at most MAX_CARD_EVENTS events): check_state_limit refuses at
start-up a producer or changelog topic that takes less, and produce_snapshot checks every
record, so a snapshot is never refused for its size, which would abort every batch forever.

Marker value, little-endian: version u8 (3), S i64, watermark f64 (NaN: no card applied yet),
ahead i64 (transactions in a row more than 24 h ahead of the watermark: core.velocity's time
policy), partitions u32 (of the input topic when written: a restore under another count would
score cards whose history is in another partition, core.replayrule.partition_count_rule), then
the writer's model version, UTF-8 (a restore by another model is logged: two models scoring one
group). Versions 2 (no partitions or model, read as 0 and "") and 1 (no `ahead` either) are
still read; code older than version 3 holds a partition whose last marker is a version 3 one.
"""

from __future__ import annotations

import math
import struct
import time
from typing import Any, Callable, NamedTuple

from core.errors import ConfigError, PipelineError, StateError
from core.limits import RECORD_OVERHEAD
from core.partreader import read_partition
from core.velocity import MAX_CARD_EVENTS, MAX_CARD_KEY_BYTES, MAX_STATE_VALUE_BYTES

__all__ = ["MARKER_KEY", "Marker", "encode_marker", "decode_marker", "take_markers", "replay_input",
           "MAX_STATE_RECORD_BYTES", "check_state_limit", "produce_snapshot"]

_PREFIX = b"fraudstream.card-state.snapshot-marker/"
MARKER_KEY = _PREFIX + b"." * (1025 - len(_PREFIX))   # MAX_CARD_KEY_BYTES + 1 bytes
_FORMAT = struct.Struct("<BqdqI")
_FORMAT_V2 = struct.Struct("<Bqdq")
_FORMAT_V1 = struct.Struct("<Bqd")
_VERSION = 3
_MAX_MODEL_BYTES = 255

_REPLAY_CHUNK = 20_000     # input records per consume() and per decode: bounded memory
# the largest changelog record by librdkafka's count (a marker record is smaller)
MAX_STATE_RECORD_BYTES = RECORD_OVERHEAD + MAX_CARD_KEY_BYTES + MAX_STATE_VALUE_BYTES


class Marker(NamedTuple):
    """A snapshot's marker: the input offset the state is at, its watermark, how many
    transactions in a row were more than 24 h ahead of the watermark then, the input topic's
    partition count and the model version of the writer (0 and "": not recorded)."""

    offset: int
    watermark: float
    ahead: int = 0
    partitions: int = 0
    model: str = ""


def encode_marker(offset: int, watermark: float, ahead: int = 0, partitions: int = 0, model: str = "") -> bytes:
    name = model.encode()[:_MAX_MODEL_BYTES]
    return _FORMAT.pack(_VERSION, offset, watermark, ahead, partitions) + name


def decode_marker(value: bytes | None) -> Marker | None:
    """The marker in a record's value, or None when it is not a valid marker (version 3, 2
    without partitions and model, or 1 without `ahead` either)."""
    if not value:
        return None
    partitions, model = 0, ""
    if value[0] == _VERSION and _FORMAT.size <= len(value) <= _FORMAT.size + _MAX_MODEL_BYTES:
        _, offset, watermark, ahead, partitions = _FORMAT.unpack_from(value)
        model = value[_FORMAT.size:].decode(errors="replace")
    elif value[0] == 2 and len(value) == _FORMAT_V2.size:
        _, offset, watermark, ahead = _FORMAT_V2.unpack(value)
    elif value[0] == 1 and len(value) == _FORMAT_V1.size:
        (_, offset, watermark), ahead = _FORMAT_V1.unpack(value), 0
    else:
        return None
    if offset < 0 or math.isinf(watermark) or ahead < 0:
        return None
    return Marker(offset, watermark, ahead, partitions, model)


def take_markers(chunk, who: str, where: str):
    """The chunk of changelog records (core.partreader.Chunk, at least one keyed MARKER_KEY)
    without the markers, and the last marker with its changelog offset. StateError naming
    `who` and `where` ("<topic>[<partition>]") at an undecodable marker."""
    keys, rows, last = chunk.keys, [], None
    i = -1
    while True:   # list.index: the scan stays in C (a chunk holds 100,000s of card records)
        try:
            i = keys.index(MARKER_KEY, i + 1)
        except ValueError:
            break
        rows.append(i)
        offset = int(chunk.offsets[i])
        marker = decode_marker(chunk.value(i))
        if marker is None:
            raise StateError(f"{who}: undecodable snapshot marker at {where}@{offset}: refusing to score "
                             f"this partition from an incomplete state")
        last = (marker, offset)
    return chunk.without(rows), last


def replay_input(reader: Any, topic: str, p: int, start: int, end: int,
                 apply: Callable[[list, list], None], progress: Callable[[int, int], None],
                 where: str) -> int:
    """Give apply(keys, values) the records of topic[p] from offset start up to end (exclusive),
    read read_committed in order and in chunks (core.partreader, librdkafka: the replay is
    bounded by one snapshot interval), keys and values as the scoring loop passes them on
    (None as b""); returns how many. `reader` is an assign()-only consumer with
    enable.partition.eof and auto.offset.reset=error: input gone since the snapshot
    (retention) is a StateError, never a replay from somewhere else. progress(records,
    position) is called about once a second."""
    n = 0
    report = time.perf_counter() + 1.0
    what = f"{where}: replaying {topic}[{p}] from {start} to {end} after the card-state snapshot"
    for chunk in read_partition(reader, topic, p, start, end, what, chunk_records=_REPLAY_CHUNK):
        if len(chunk):
            keys, values = chunk.keys, chunk.values()
            if None in keys:
                keys = [k or b"" for k in keys]
            if None in values:
                values = [v or b"" for v in values]
            apply(keys, values)
            n += len(keys)
        now = time.perf_counter()
        if now >= report:
            report = now + 1.0
            progress(n, chunk.position)
    return n


def check_state_limit(topic: str, limit: int) -> None:
    """ConfigError unless a record of MAX_STATE_RECORD_BYTES fits `limit`, the smaller of the
    producer's message.max.bytes and the changelog topic's max.message.bytes (core.limits)."""
    if MAX_STATE_RECORD_BYTES > limit:
        raise ConfigError(f"state: a {topic} record can take {MAX_STATE_RECORD_BYTES:,} bytes (a card's "
                          f"{MAX_CARD_EVENTS:,} events and a {MAX_CARD_KEY_BYTES:,}-byte key), more than the "
                          f"{limit:,} the producer's message.max.bytes and the topic's max.message.bytes "
                          f"allow: raise them, or run without state")


def produce_snapshot(producer: Any, topic: str, p: int, records: list, limit: int, who: str) -> int:
    """Produce a snapshot's records (key, value or None) to topic[p] in order; returns the bytes
    of their keys and values. PipelineError, before producing any, when one would be larger
    than `limit` (check_state_limit and the bounds make that impossible: this names the
    partition and the snapshot instead of an abort of every batch that carries it)."""
    sizes = [len(key) + (len(value) if value is not None else 0) for key, value in records]
    largest = max(sizes, default=0) + RECORD_OVERHEAD
    if largest > limit:
        raise PipelineError(f"{who}: a card-state record for {topic}[{p}] would take {largest:,} bytes, over the "
                            f"limit of {limit:,} ({len(records) - 1:,} cards, {sum(sizes):,} bytes in this "
                            f"snapshot): a bug, the card bounds (core.velocity) should prevent it")
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key, p)
                break
            except BufferError:   # a snapshot can outgrow the queue: let it drain
                producer.poll(0.1)
    return sum(sizes)
