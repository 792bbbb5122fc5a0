"""One chunked reader of a partition's committed records over [start, end), for the restore of
the card-state changelog (core.cardstate) and the replay of the input (core.snapshot).

    for chunk in read_partition(consumer, topic, p, start, end, what, fast=...):
        chunk.keys          # list of bytes (None: no key), in offset order, made on demand
        chunk.key_column()  # the keys in one buffer (core.cardindex.FlatKeys): no object per key
        chunk.offsets       # int64 array
        chunk.values()      # list of bytes (None: tombstone), made on demand
        chunk.flat()        # (uint8 buffer, starts, lengths with -1 for None): no object per value
        chunk.position      # the next offset to read

Two implementations yield the same chunks. librdkafka (`consumer`: an assign()-only consumer,
read_committed, enable.partition.eof, auto.offset.reset=error) serves every configuration;
core.fetchlog, a Fetch client parsing record batches into flat arrays, reads 2-3x faster and
serves PLAINTEXT brokers when `fast` is set. If the fast reader cannot start or stops (SSL or
SASL settings, an unsupported version or codec, any protocol or broker error), the read goes
on with librdkafka from the fast reader's last position, and the log says which reader ran
and why. Either way an error librdkafka reports is a StateError whose text begins with `what`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterator

import numpy as np
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from core.cardindex import FlatKeys, flat_keys
from core.errors import StateError
from core.fetchlog import FetchError, PartitionFetcher
from core.recordbatch import Records, flatten, pieces

__all__ = ["Chunk", "read_partition", "fast_refusal"]

log = logging.getLogger(__name__)

_CHUNK = 100_000          # records per consume()
_POLL_S = 0.02            # consume() waits for a full chunk or this long: short, or every small read takes it
# No record nor end of partition for this long: a StateError (the partition is held and retried)
# rather than a restore that blocks its worker silently. Above transaction.timeout.ms's default
# (60 s), the longest an open transaction can hold back what read_committed may read.
STALL_S = 120.0


class Chunk:
    """Records of one partition in offset order (see the module docstring)."""

    __slots__ = ("offsets", "position", "reader", "_keys", "_kcols", "_values", "_flat")

    def __init__(self, offsets: np.ndarray, keys: list | None, position: int, values: list | None = None,
                 flat: tuple | None = None, reader: str = "librdkafka", kcols: tuple | None = None):
        self.offsets, self.position, self.reader = offsets, position, reader
        self._keys, self._kcols = keys, kcols     # kcols: (uint8 buffer, kpos, klen), keys made on demand
        self._values, self._flat = values, flat

    def __len__(self) -> int:
        return self.offsets.shape[0]

    @property
    def keys(self) -> list:
        if self._keys is None:
            self._keys = _keys(*self._kcols)
        return self._keys

    def key_column(self) -> FlatKeys:
        """The keys without an object each (every record has one: see null_key_row)."""
        if self._kcols is not None:
            return FlatKeys(*self._kcols)
        return flat_keys(self._keys)

    def null_key_row(self) -> int:
        """The first row without a key, -1 if none."""
        if self._kcols is not None:
            rows = (self._kcols[2] < 0).nonzero()[0]
            return int(rows[0]) if rows.size else -1
        return self._keys.index(None) if None in self._keys else -1

    def has_key(self, key: bytes) -> bool:
        if self._kcols is None:
            return key in self._keys
        data, kpos, klen = self._kcols
        rows = (klen == len(key)).nonzero()[0]
        want = np.frombuffer(key, dtype=np.uint8)
        return any(np.array_equal(data[s:s + want.shape[0]], want) for s in kpos[rows].tolist())

    def values(self) -> list:
        if self._values is None:
            data, starts, lengths = self._flat
            raw = data.tobytes()
            self._values = [None if n < 0 else raw[s:s + n] for s, n in zip(starts.tolist(), lengths.tolist())]
        return self._values

    def value(self, i: int) -> bytes | None:
        if self._values is not None:
            return self._values[i]
        data, starts, lengths = self._flat
        n = int(lengths[i])
        return None if n < 0 else data[int(starts[i]):int(starts[i]) + n].tobytes()

    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._flat is None:
            self._flat = flatten(self._values)
        return self._flat

    def without(self, rows: list[int]) -> "Chunk":
        """The chunk less the records at these rows (ascending, few), same position."""
        keys = kcols = None
        if self._keys is not None:
            keys = list(self._keys)
            for i in reversed(rows):
                del keys[i]
        if self._kcols is not None:
            data, kpos, klen = self._kcols
            kcols = (data, np.delete(kpos, rows), np.delete(klen, rows))
        offsets = np.delete(self.offsets, rows)
        if self._flat is not None:
            data, starts, lengths = self._flat
            return Chunk(offsets, keys, self.position, flat=(data, np.delete(starts, rows), np.delete(lengths, rows)),
                         reader=self.reader, kcols=kcols)
        values = list(self._values)
        for i in reversed(rows):
            del values[i]
        return Chunk(offsets, keys, self.position, values=values, reader=self.reader, kcols=kcols)

    @classmethod
    def of_records(cls, r: Records, reader: str = "Fetch") -> "Chunk":
        return cls(r.offsets, None, r.position, flat=(r.data, r.vpos, r.vlen), reader=reader,
                   kcols=(r.data, r.kpos, r.klen))


def _keys(data: np.ndarray, kpos: np.ndarray, klen: np.ndarray) -> list:
    """The keys data[kpos[i]:kpos[i] + klen[i]] as bytes objects (None: klen -1). Card keys have
    one length: those are gathered into one (n, length) array whose rows become bytes in one C
    call (tolist of a void view, trailing zero bytes kept), 2.3x faster than slicing each (1M
    keys: 0.10 s vs 0.23 s, 2026-12-06); the few others (markers, nulls) are put in one by one.
    A restore does not need them (Chunk.key_column): the replay of the input and the markers do."""
    n = klen.shape[0]
    if n == 0:
        return []
    lengths, counts = np.unique(klen, return_counts=True)
    size = int(lengths[counts.argmax()])
    if size <= 0 or counts.max() < n - n // 100:   # no common length: each sliced
        keys = pieces(data.tobytes(), kpos + np.maximum(klen, 0), kpos)
        for i in (klen < 0).nonzero()[0].tolist():
            keys[i] = None
        return keys
    same = klen == size
    rows = data[kpos[same][:, None] + np.arange(size)]
    keys = rows.view(f"V{size}").ravel().tolist()
    for i in (~same).nonzero()[0].tolist():   # ascending: each lands at its row
        keys.insert(i, None if klen[i] < 0 else data[kpos[i]:kpos[i] + klen[i]].tobytes())
    return keys


def fast_refusal(kafka: dict[str, Any]) -> str | None:
    """Why the fast reader cannot serve this client configuration (None: it can)."""
    protocol = str(kafka.get("security.protocol", "plaintext")).lower()
    if protocol != "plaintext":
        return f"security.protocol is {protocol}"
    for key in sorted(kafka):
        if key.startswith(("sasl.", "ssl.", "socks")):
            return f"{key} is set"
    return None


def read_partition(consumer: Any, topic: str, p: int, start: int, end: int, what: str,
                   fast: bool = False, chunk_records: int = _CHUNK) -> Iterator[Chunk]:
    """Chunks of the committed records of topic[p] with start <= offset < end."""
    position = start
    if fast and start < end:
        fetcher = None
        try:
            fetcher = PartitionFetcher(*_leader(consumer, topic, p), topic, p)
            for records in fetcher.read_ahead(start, end):
                chunk = Chunk.of_records(records, f"Fetch v{fetcher.version}")
                position = chunk.position   # only once the chunk is whole: the fallback starts here
                yield chunk
            log.debug("%s: read %s[%d] %d..%d with the fast Fetch reader (Fetch v%d)", what, topic, p,
                     start, end, fetcher.version)
            return
        except Exception as exc:   # FetchError, or a bug of ours: what it yielded is right either way
            log.warning("%s: fast Fetch reader stopped at %s[%d]@%d (%s): reading on with librdkafka",
                        what, topic, p, position, exc if isinstance(exc, FetchError) else repr(exc))
        finally:
            if fetcher is not None:
                fetcher.close()
    yield from _consume(consumer, topic, p, position, end, what, chunk_records)


def _leader(consumer: Any, topic: str, p: int) -> tuple[str, int]:
    try:
        md = consumer.list_topics(topic, timeout=10.0)
    except KafkaException as exc:
        raise FetchError(f"no metadata: {exc.args[0]}") from None
    part = md.topics.get(topic) and md.topics[topic].partitions.get(p)
    broker = md.brokers.get(part.leader) if part else None
    if broker is None:
        raise FetchError(f"no leader known for {topic}[{p}]")
    return broker.host, broker.port


def _consume(consumer: Any, topic: str, p: int, start: int, end: int, what: str,
             chunk_records: int) -> Iterator[Chunk]:
    """read_partition with librdkafka."""
    if start >= end:
        return
    consumer.assign([TopicPartition(topic, p, start)])
    position = start
    moved = time.monotonic()
    try:
        while position < end:
            before = position
            msgs = consumer.consume(num_messages=chunk_records, timeout=_POLL_S)
            if msgs and msgs[-1].error() is not None:   # usually the end: past the last record and markers
                eof = msgs.pop()
                if eof.error().code() != KafkaError._PARTITION_EOF:
                    raise StateError(f"{what}: {eof.error().str()}")
                position = max(position, eof.offset())
            if not msgs:
                if position > before:
                    moved = time.monotonic()
                elif time.monotonic() - moved > STALL_S:
                    raise StateError(f"{what}: nothing read from {topic}[{p}] for {STALL_S:.0f} s at offset "
                                     f"{position} of {end} (broker unreachable, or a transaction left open?)")
                continue
            moved = time.monotonic()
            # map over the method descriptors: the per-record loop stays in C
            keys = list(map(Message.key, msgs))
            # an error event (an EOF in the middle) has no key, and only a record of an
            # earlier assignment can come first from another partition: then one by one
            if None in keys or msgs[0].partition() != p or msgs[0].topic() != topic:
                msgs, position = _records_of(msgs, topic, p, position, what)
                keys = list(map(Message.key, msgs))
                if not msgs:
                    continue
            offsets = np.fromiter(map(Message.offset, msgs), np.int64, len(msgs))
            position = max(position, int(offsets[-1]) + 1)
            if offsets[-1] >= end:
                cut = int(np.searchsorted(offsets, end))
                msgs, keys, offsets = msgs[:cut], keys[:cut], offsets[:cut]
            yield Chunk(offsets, keys, position, values=list(map(Message.value, msgs)))
    finally:
        consumer.unassign()


def _records_of(msgs: list, topic: str, p: int, position: int, what: str) -> tuple[list, int]:
    """The records of topic[p] among msgs, and the position past EOF events; StateError at
    any other error."""
    good = []
    for m in msgs:
        err = m.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                raise StateError(f"{what}: {err.str()}")
            if m.partition() == p and m.topic() == topic:
                position = max(position, m.offset())
        elif m.partition() == p and m.topic() == topic:
            good.append(m)
    return good, position
