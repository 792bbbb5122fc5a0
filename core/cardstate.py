"""The per-card state of the partitions one scoring process owns, kept exactly once in Kafka.

One core.velocity.CardStore per assigned partition p of `transactions`. Every batch's state
changes (one record per card touched, the card key as key, the binary state as value, a
tombstone for an evicted card) go to partition p of the compacted topic `fraud-card-state`
inside the batch's Kafka transaction, with its outputs and input offsets. So the committed
changelog of p is, at every instant, exactly the state the committed offset of p was scored
from.

Restore. A partition is restored before its first batch is scored (lazily, in the loop, so
a rebalance callback never blocks): the slot first asks for p's committed offset (librdkafka
asks the coordinator for *stable* offsets under read_committed, so an owner's transaction
still holding offsets of p is resolved first), then reads p of the changelog read_committed
from its start up to its end (the last stable offset). Whatever is read is committed data;
a transaction after that point cannot commit any more (its owner lost p, and its offsets
would be refused), so nothing is lost and nothing applied twice. A partition revoked or lost
is dropped, restored or not; an aborted transaction drops the stores of its partitions
(they had already applied the batch) and they are restored again before the retry.

A changelog record that cannot be decoded stops the slot with a StateError naming topic,
partition and offset: starting from empty would silently change every score after it.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from core.cardfields import event_columns
from core.config import ScoringConfig
from core.errors import StateError
from core.features import AMOUNT
from core.velocity import N_VELOCITY, CardStore, StateRecordError

__all__ = ["CardStates", "RestoreStats", "batch_velocity"]

log = logging.getLogger(__name__)

_RESTORE_CHUNK = 100_000      # records per consume() and per kernel call
# consume() waits for a full chunk or this long: short, or every small restore takes it
_RESTORE_POLL_S = 0.02
_RESTORE_PROGRESS_S = 5.0


# A card key longer than this is no card hash (they are tens of bytes): such a transaction is
# scored as a card with no history and never kept, so its changelog record, which carries the
# key, can never be too large for the state topic and abort every batch (a 1 MB key did).
MAX_CARD_KEY_BYTES = 1024


def _apply(store: CardStore, keys: list, t, amount, mcc) -> np.ndarray:
    """store.apply, but rows whose key is over MAX_CARD_KEY_BYTES see a card with no history
    (each alone, so their features do not depend on the batch) and leave the store as it is."""
    if not keys or max(map(len, keys)) <= MAX_CARD_KEY_BYTES:
        return store.apply(keys, t, amount, mcc)
    big = np.array([len(key) > MAX_CARD_KEY_BYTES for key in keys])
    out = np.empty((len(keys), N_VELOCITY), dtype=np.float32)
    keep = (~big).nonzero()[0]
    out[keep] = store.apply([keys[i] for i in keep.tolist()], t[keep], amount[keep], mcc[keep])
    for i in big.nonzero()[0].tolist():
        out[i] = CardStore().apply([b"-"], t[i:i + 1], amount[i:i + 1], mcc[i:i + 1])[0]
    return out


def batch_velocity(stores, parts, keys: list):
    """The `velocity` function for core.Scorer.score_batch: input row r is a transaction of
    partition parts[r] (an int64 array; its store: stores[parts[r]]) and card keys[r]. Rows of
    one partition are applied in input order, one kernel call per partition."""
    def compute(d, values) -> np.ndarray:
        rows = d.good
        t, mcc = event_columns(d)
        if rows.shape[0] == len(keys):       # usual: every row good, no copy of keys or parts
            amount, part, picked = np.ascontiguousarray(d.x[:, AMOUNT]), parts, keys
        else:
            amount, part = d.x[rows, AMOUNT], parts[rows]
            picked = list(map(keys.__getitem__, rows.tolist()))
        first = part[0]
        if part[-1] == first and (part == first).all():   # usual: one partition per process
            return _apply(stores[int(first)], picked, t, amount, mcc)
        out = np.empty((rows.shape[0], N_VELOCITY), dtype=np.float32)
        for p in np.unique(part).tolist():
            sel = (part == p).nonzero()[0]
            out[sel] = _apply(stores[p], list(map(picked.__getitem__, sel.tolist())), t[sel],
                              amount[sel], mcc[sel])
        return out
    return compute


class _Gauges:
    """Prometheus gauges of the state (per process; the supervisor sums the live ones)."""

    _made: "_Gauges | None" = None

    def __init__(self):
        from prometheus_client import Gauge

        self.cards = Gauge("fraudstream_state_cards", "Cards in the per-card state", multiprocess_mode="livesum")
        self.bytes = Gauge("fraudstream_state_bytes", "Memory of the per-card state (bytes)",
                           multiprocess_mode="livesum")
        self.restoring = Gauge("fraudstream_state_restoring_partitions", "Partitions being restored now",
                               multiprocess_mode="livesum")
        self.restored = Gauge("fraudstream_state_restore_records", "Changelog records read by the restore in progress",
                              multiprocess_mode="livesum")
        self.restore_end = Gauge("fraudstream_state_restore_target_records",
                                 "Changelog records the restore in progress reads at most", multiprocess_mode="livesum")
        self.last_seconds = Gauge("fraudstream_state_last_restore_seconds", "Duration of the last restore",
                                  multiprocess_mode="livemax")

    @classmethod
    def get(cls) -> "_Gauges":
        if cls._made is None:
            cls._made = cls()
        return cls._made


class RestoreStats:
    """Restore progress for metrics: records read of the current one, the last duration."""

    __slots__ = ("active", "records", "target", "last_seconds", "last_records")

    def __init__(self):
        self.active = 0
        self.records = 0
        self.target = 0
        self.last_seconds = 0.0
        self.last_records = 0


class CardStates:
    """State stores of the assigned partitions, their changelog writes and their restore."""

    def __init__(self, config: ScoringConfig, name: str):
        self.topic = config.topics.state
        self.name = name
        self._config = config
        self._stores: dict[int, CardStore] = {}
        self._reader: Consumer | None = None
        self.restore_stats = RestoreStats()
        self._gauges = _Gauges.get()

    # -- ownership (called from the loop's rebalance callbacks and on aborts) ----------------

    def drop(self, partitions) -> None:
        """Forget the stores of these partitions (revoked, lost, or their batch aborted)."""
        for p in partitions:
            self._stores.pop(p, None)

    def cards(self) -> int:
        return sum(len(s) for s in self._stores.values())

    def stats_text(self) -> str:
        """The state's part of the stats line."""
        r = self.restore_stats
        text = f" | state {self.cards():,} cards {self.nbytes() / 1e6:,.1f} MB"
        if r.active:
            text += f", restoring {r.records:,}/{r.target:,} records"
        return text + f", last restore {r.last_seconds:.2f} s ({r.last_records:,} records)"

    def _publish(self) -> None:
        g, r = self._gauges, self.restore_stats
        g.cards.set(self.cards())
        g.bytes.set(self.nbytes())
        g.restoring.set(1 if r.active else 0)
        g.restored.set(r.records if r.active else 0)
        g.restore_end.set(r.target if r.active else 0)
        g.last_seconds.set(r.last_seconds)

    def nbytes(self) -> int:
        return sum(s.nbytes() for s in self._stores.values())

    # -- the batch ---------------------------------------------------------------------------

    def velocity(self, consumer: Consumer, msgs: list[Any]):
        """A function (Decoded, values) -> float32 (good, 10) that scores `msgs`' good rows
        against their partitions' stores (restored first when needed)."""
        partitions = sorted({m.partition() for m in msgs})
        missing = [p for p in partitions if p not in self._stores]
        if missing:
            self._restore(consumer, missing)

        return batch_velocity(self._stores, np.fromiter([m.partition() for m in msgs], np.int64, len(msgs)),
                              [m.key() or b"" for m in msgs])

    def produce_changes(self, producer: Any, partitions) -> int:
        """Produce the stores' pending changes (inside the open transaction); returns how many."""
        topic = self.topic
        n = 0
        for p in partitions:
            store = self._stores.get(p)
            if store is None:
                continue
            for key, value in store.changes():
                try:
                    producer.produce(topic, value, key, p)
                except BufferError:
                    producer.poll(0.5)
                    producer.produce(topic, value, key, p)
                n += 1
        self._publish()
        return n

    # -- restore -----------------------------------------------------------------------------

    def _restore(self, consumer: Consumer, partitions: list[int]) -> None:
        src = self._config.topics.transactions
        try:   # the committed offsets, stable: see the module docstring
            consumer.committed([TopicPartition(src, p) for p in partitions], timeout=60.0)
        except KafkaException as exc:
            raise StateError(f"{self.name}: committed offsets of {src}{partitions} unavailable "
                             f"before restoring their card state: {exc.args[0]}") from exc
        for p in partitions:
            self._stores[p] = self._restore_one(p)

    def _restore_one(self, p: int) -> CardStore:
        reader = self._reader_consumer()
        tp = TopicPartition(self.topic, p)
        started = time.perf_counter()
        try:
            low, end = reader.get_watermark_offsets(tp, timeout=30.0, cached=False)
        except KafkaException as exc:
            raise StateError(f"{self.name}: cannot read the end of {self.topic}[{p}]: {exc.args[0]}") from exc
        store = CardStore()
        stats = self.restore_stats
        stats.active, stats.records, stats.target = p + 1, 0, max(0, end - low)
        self._publish()
        if end > low:
            reader.assign([TopicPartition(self.topic, p, low)])
            try:
                self._read_into(reader, store, p, end, started)
            finally:
                reader.unassign()
        store.discard_changes()
        seconds = time.perf_counter() - started
        stats.active, stats.last_seconds, stats.last_records = 0, seconds, stats.records
        self._publish()
        log.info("%s: restored %s[%d]: %d cards from %d records in %.2f s", self.name, self.topic,
                 p, len(store), stats.records, seconds)
        return store

    def _read_into(self, reader: Consumer, store: CardStore, p: int, end: int, started: float) -> None:
        # confluent-kafka's Messages are tracked by the garbage collector: 100,000 of them per
        # consume() set off collections that traverse every live one, 40% of a restore's CPU
        # (py-spy, 2026-12-06). A restore makes no reference cycles, so none runs meanwhile.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._read_chunks(reader, store, p, end, started)
        finally:
            if collecting:
                gc.enable()

    def _read_chunks(self, reader: Consumer, store: CardStore, p: int, end: int, started: float) -> None:
        stats = self.restore_stats
        position = -1
        report = started + _RESTORE_PROGRESS_S
        while True:
            msgs = reader.consume(num_messages=_RESTORE_CHUNK, timeout=_RESTORE_POLL_S)
            if msgs and msgs[-1].error() is not None:   # the end: past the last record and markers
                eof = msgs.pop()
                if eof.error().code() != KafkaError._PARTITION_EOF:
                    raise StateError(f"{self.name}: reading {self.topic}[{p}]: {eof.error().str()}")
                position = max(position, eof.offset())
            if msgs:
                # map over the method descriptors: the per-record loop stays in C
                keys = list(map(Message.key, msgs))
                if None in keys:   # an error event (an EOF in the middle) or a keyless record
                    msgs = self._good_messages(msgs, p)
                    keys = list(map(Message.key, msgs))
                try:
                    store.restore_columns(keys, list(map(Message.value, msgs)))
                except StateRecordError as exc:
                    m = msgs[exc.index]
                    raise StateError(
                        f"{self.name}: undecodable card state at {self.topic}[{p}]@{m.offset()} "
                        f"({len(m.value())} bytes): refusing to score this partition from an "
                        f"incomplete state") from None
                stats.records += len(msgs)
                position = max(position, msgs[-1].offset() + 1)
            if position >= end:
                return
            now = time.perf_counter()
            if now >= report:
                report = now + _RESTORE_PROGRESS_S
                self._publish()
                log.info("%s: restoring %s[%d]: %d records, offset %d of %d", self.name, self.topic,
                         p, stats.records, position, end)

    def _good_messages(self, msgs, p: int) -> list:
        """msgs without EOF events; StateError at any other error or a record without key."""
        good = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise StateError(f"{self.name}: reading {self.topic}[{p}]: {err.str()}")
            elif m.key() is None:
                raise StateError(f"{self.name}: undecodable card state at {self.topic}[{p}]@"
                                 f"{m.offset()}: a record without a key")
            else:
                good.append(m)
        return good

    def _reader_consumer(self) -> Consumer:
        if self._reader is None:
            from core.txn import consumer_settings
            settings = consumer_settings(self._config, 0)
            settings.pop("group.instance.id", None)
            # Prefetch up to 1M records (librdkafka's default 100,000 left the reader waiting
            # for fetches): a 1M-record restore 2.2-2.5 s instead of 3.4-3.6 s with a core
            # free, the same when CPU-starved; ~200 MB more memory while it runs (2026-12-06).
            settings.update({"enable.auto.commit": "false", "enable.partition.eof": "true",
                             "fetch.max.bytes": str(64 << 20), "fetch.wait.max.ms": "10",
                             "max.partition.fetch.bytes": str(16 << 20),
                             "queued.min.messages": "1000000", "queued.max.messages.kbytes": str(256 << 10)})
            self._reader = Consumer(settings)
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("%s: state reader close: %s", self.name, exc)
            self._reader = None
