"""The per-card state of the partitions one scoring process owns, kept exactly once in Kafka.

One core.velocity.CardStore per assigned partition p of `transactions`, applied in p's offset
order as batches are scored. Its changes reach partition p of the compacted topic
`fraud-card-state` as incremental snapshots (core.snapshot), not per batch: every
`state_snapshot_s` seconds (and in p's first transaction after a restore), one of p's batch
transactions also carries the records of the cards changed since p's previous snapshot (the
card key as key, the binary state as value, a tombstone for a card evicted) and then a marker
record giving S, the input offset that same transaction commits for p. Marker, card records
and input offsets commit atomically, so the committed changelog of p is, at every instant,
exactly the state at p's last committed marker S; the input offsets committed since then
(up to the committed offset X) are records of `transactions` itself, an immutable log.

Restore. A partition is restored before its first batch is scored (lazily, in the loop, so a
rebalance callback never blocks):
1. the committed offset X of p: librdkafka asks the coordinator for *stable* offsets under
   read_committed, so an earlier owner's transaction still holding offsets of p is resolved
   (committed or aborted) first;
2. the changelog of p, read_committed from its start up to its end: the state at the last
   marker S (checked: the watermark it rebuilds must be the marker's);
3. the replay: `transactions`[p] from S up to X, read_committed, decoded exactly as the scorer
   decodes a batch and applied as the live path applies it (core.cardbatch), dead letters
   skipped as the live path skips them, nothing scored or produced. CardStore is independent of the batch
   split, so the store is bit for bit the state X was scored from; p's next transaction writes
   a snapshot at once, so repeated failures never replay more than one interval again.
Whatever steps 2 and 3 read is committed data. A transaction committing after step 1 cannot
hold records or offsets of p (its owner lost p: the coordinator refuses its offsets and it
aborts), and a transaction of ours cannot commit once p is given to another owner during our
restore, so nothing is lost and nothing applied twice, however rebalances interleave. A
partition revoked or lost is dropped, restored or not; an aborted transaction drops the stores
of its partitions (they had applied the batch, and its snapshot never committed) and they are
restored and replayed again before the retry. Only partitions of the batch are snapshotted,
so an abort never loses another partition's pending changes.

A changelog without a marker was written before snapshots existed (one record per card per
batch: the state at X itself) or is empty; nothing is replayed, and the first transaction
writes a marker. Physical eviction and the sweep's cursor differ between the writer and the
restored store, and need not be in the marker: an idle card is treated as new whether or not
it is still held (core._velocity_kernel), and the watermark is the latest time of the card
that set it, which is never evicted.

Cost: changelog records scale with the distinct cards changed per snapshot interval per
partition, not with transactions. A few cards that transact often (the 10,000-card drain)
write far less; millions of cards each seen once an interval write nearly as much as before.

A changelog record that cannot be decoded, a marker that does not match the state, input
missing between S and X (retention), or X behind S (core.replayrule) is a StateError naming
topic, partition and offset: the loop holds that partition (core.stateholds) rather than start
it from a state that is not the one X was scored from, which would silently change every score
after it.
"""

from __future__ import annotations

import gc
import logging
import math
import time
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from core.cardbatch import apply_input, batch_velocity
from core.config import ScoringConfig
from core.errors import StateError
from core.partreader import fast_refusal, read_partition
from core.limits import DEFAULT_MAX_MESSAGE_BYTES
from core.replayrule import replay_plan
from core.restorecheck import check_marker, partition_counts
from core.snapshot import (MARKER_KEY, Marker, check_state_limit, encode_marker, produce_snapshot, replay_input,
                           take_markers)
from core.statemetrics import RestoreStats, StateGauges
from core.velocity import CardStore, StateRecordError

__all__ = ["CardStates", "RestoreStats", "next_snapshot"]

log = logging.getLogger(__name__)

_RESTORE_PROGRESS_S = 5.0
# How often the batches update the state's gauges (cards, bytes): what /metrics shows lags
# the state by at most this much.
_PUBLISH_S = 1.0


def next_snapshot(p: int, now: float, interval: float) -> float:
    """When partition p's next snapshot is due after one at `now` (time.monotonic(), shared by
    the processes of one machine): the first instant after now at p's own phase of the interval
    (golden-ratio spread), so the partitions of a service snapshot spread over the interval,
    not all in the same transactions. They would otherwise stay in step from their first
    snapshot (the first transaction after each restore), and every `interval` one transaction
    per worker carried every partition's changed cards at once: a latency spike."""
    if interval <= 0.0:
        return 0.0
    phase = (p * 0.6180339887498949) % 1.0 * interval
    return phase + (math.floor((now - phase) / interval) + 1.0) * interval


class CardStates:
    """State stores of the assigned partitions, their snapshots and their restore."""

    def __init__(self, config: ScoringConfig, name: str, model: str = ""):
        self.topic = config.topics.state
        self.name = name
        self.model = model        # the scorer's model version, in every marker
        self._partitions = 0      # of the input topic at the last restore, in every marker
        self._config = config
        self._interval = config.state_snapshot_s
        self._stores: dict[int, CardStore] = {}
        self._due: dict[int, float] = {}          # p -> time.monotonic() of its next snapshot
        self._markers: dict[int, tuple[Marker, int]] = {}   # p -> last marker read, its changelog offset
        self._reader: Consumer | None = None
        self._fast = False        # the changelog read with core.fetchlog: see _reader_consumer
        self._read_with: list[str] = []   # the readers of the last restore, for its log line
        self.restore_stats = RestoreStats()
        self._gauges = StateGauges.get()
        self._publish_at = 0.0    # time.monotonic() when the batches next set the gauges
        self.limit = DEFAULT_MAX_MESSAGE_BYTES   # the largest record the changelog takes: set_limit

    def set_limit(self, limit: int) -> None:
        """The largest record the changelog takes (core.limits); ConfigError if a card's may not."""
        check_state_limit(self.topic, limit)
        self.limit = limit

    # -- ownership (called from the loop's rebalance callbacks and on aborts) ----------------

    def drop(self, partitions) -> None:
        """Forget the stores of these partitions (revoked, lost, or their batch aborted)."""
        for p in partitions:
            self._stores.pop(p, None)
            self._due.pop(p, None)

    def cards(self) -> int:
        return sum(len(s) for s in self._stores.values())

    def stats_text(self) -> str:
        """The state's part of the stats line."""
        return f" | state {self.cards():,} cards {self.nbytes() / 1e6:,.1f} MB" + self.restore_stats.text()

    def _publish(self) -> None:
        """Set the state's gauges: at once for a restore's steps, at most every _PUBLISH_S
        from the batches (ten gauge writes and the state's size were ~8 % of the per-batch
        state work at 50-record batches), and at close."""
        self._publish_at = time.monotonic() + _PUBLISH_S
        g, r = self._gauges, self.restore_stats
        g.cards.set(self.cards())
        g.bytes.set(self.nbytes())
        g.restoring.set(1 if r.active else 0)
        g.restored.set(r.records if r.active else 0)
        g.restore_end.set(r.target if r.active else 0)
        g.replayed.set(r.replayed if r.active else 0)
        g.replay_end.set(r.replay_target if r.active else 0)
        g.last_seconds.set(r.last_seconds)
        g.last_replay_records.set(r.last_replayed)
        g.last_replay_seconds.set(r.last_replay_seconds)

    def nbytes(self) -> int:
        return sum(s.nbytes() for s in self._stores.values())

    # -- the batch ---------------------------------------------------------------------------

    def missing(self, msgs: list[Any]) -> list[int]:
        """The partitions of msgs that have no state here yet (to be restored), in order."""
        return sorted(set(map(Message.partition, msgs)).difference(self._stores))

    def restore(self, consumer: Consumer, partitions: list[int]) -> None:
        """Restore these partitions' state (see the module docstring); StateError when one
        cannot be, naming where (the partition stays without state, the restore gauges idle)."""
        try:
            self._restore(consumer, partitions)
        except StateError:
            stats = self.restore_stats
            stats.active, stats.replay_target = 0, 0
            for p in partitions:
                self._markers.pop(p, None)
            self._publish()
            raise

    def velocity(self, consumer: Consumer, msgs: list[Any]):
        """A function (Decoded, values) -> float32 (good, N_VELOCITY) that scores `msgs`' good rows
        against their partitions' stores (restored first when needed)."""
        parts = list(map(Message.partition, msgs))
        missing = set(parts).difference(self._stores)   # none after core.stateholds admitted the batch
        if missing:
            self.restore(consumer, sorted(missing))
        keys = list(map(Message.key, msgs))
        if None in keys:   # a record without a key: b"", no card (core.velocity.apply_bounded)
            keys = [k or b"" for k in keys]
        return batch_velocity(self._stores, np.array(parts, np.int64), keys)

    def produce_changes(self, producer: Any, offsets: list[TopicPartition]) -> int:
        """Inside the batch's open transaction: a snapshot of each partition of the batch that
        is due one, at the input offset this transaction commits for it (`offsets`: the
        batch's next offsets). Returns the records produced."""
        now = time.monotonic()
        n = 0
        for tp in offsets:
            p = tp.partition
            store = self._stores.get(p)
            if store is None or self._due.get(p, 0.0) > now:
                continue
            n += self._snapshot(producer, p, store, tp.offset)
            self._due[p] = next_snapshot(p, now, self._interval)
        if now >= self._publish_at:
            self._publish()
        return n

    def _snapshot(self, producer: Any, p: int, store: CardStore, offset: int) -> int:
        """The cards changed since p's last snapshot (tombstones first), then the marker last:
        a marker read by a restore comes after every card record of its snapshot."""
        records = store.changes()
        records.append((MARKER_KEY, encode_marker(offset, store.watermark, store.ahead, self._partitions, self.model)))
        size = produce_snapshot(producer, self.topic, p, records, self.limit, self.name)
        stats, g = self.restore_stats, self._gauges
        stats.written += len(records)
        stats.written_bytes += size
        g.snapshot_records.inc(len(records))
        g.snapshot_bytes.inc(size)
        return len(records)

    # -- restore -----------------------------------------------------------------------------

    def _restore(self, consumer: Consumer, partitions: list[int]) -> None:
        src = self._config.topics.transactions
        try:   # the committed offsets, stable: see the module docstring
            committed = consumer.committed([TopicPartition(src, p) for p in partitions], timeout=60.0)
        except KafkaException as exc:
            raise StateError(f"{self.name}: committed offsets of {src}{partitions} unavailable "
                             f"before restoring their card state: {exc.args[0]}") from exc
        # (partitions of the input, of the changelog) now; StateError when they differ
        counts = partition_counts(self._reader_consumer(), self._config, self.name)
        self._partitions = counts[0]
        for tp in committed:
            p = tp.partition
            if tp.error is not None:   # else its offset, -1001, would read as "never committed"
                raise StateError(f"{self.name}: committed offset of {src}[{p}] unavailable: {tp.error}")
            started = time.perf_counter()
            store = self._restore_one(p)
            check_marker(self._config, self.name, p, self._markers.get(p, (None, -1))[0], counts[0], self.model)
            self._replay(store, p, self._markers.pop(p, (None, -1))[0], tp.offset, started)
            self._stores[p] = store
            self._due[p] = 0.0   # p's first transaction writes a snapshot: see the module docstring

    def _replay(self, store: CardStore, p: int, marker: Marker | None, committed: int, started: float) -> None:
        """Bring `store`, the state at marker.offset, up to the committed input offset."""
        stats = self.restore_stats
        stats.replayed = 0
        src = self._config.topics.transactions
        begun = time.perf_counter()
        try:
            plan = replay_plan(src=src, p=p, state_topic=self.topic, snapshot=marker.offset if marker else None,
                               committed=committed, cards=len(store), offset_reset=self._config.offset_reset,
                               low=lambda: self._input_start(p), exactly_once=self._config.exactly_once)
        except StateError as exc:
            raise StateError(f"{self.name}: {exc}") from None
        if plan.note:
            log.log(plan.level, "%s: %s", self.name, plan.note)
        start = plan.start
        if start < committed:
            stats.active, stats.replay_target = p + 1, committed - start

            def progress(n: int, position: int) -> None:
                stats.replayed = n
                self._publish()
                log.info("%s: replaying %s[%d]: %d records, offset %d of %d", self.name, src, p, n, position,
                         committed)

            stats.replayed = replay_input(self._reader_consumer(), src, p, start, committed,
                                          lambda keys, values: apply_input(store, keys, values), progress, self.name)
        replay_s = time.perf_counter() - begun
        seconds = time.perf_counter() - started
        stats.replayed_total += stats.replayed
        self._gauges.replayed_total.inc(stats.replayed)
        stats.active, stats.replay_target = 0, 0
        stats.last_seconds, stats.last_replayed, stats.last_replay_seconds = seconds, stats.replayed, replay_s
        self._publish()
        log.info("%s: replayed %s[%d] from %s to %s: %d records in %.2f s; restore + replay %.2f s, %d cards",
                 self.name, src, p, marker.offset if marker else "-", committed if committed >= 0 else "-",
                 stats.replayed, replay_s, seconds, len(store))

    def _input_start(self, p: int) -> int:
        """The first offset of input partition p now (retention may have moved it)."""
        src = self._config.topics.transactions
        try:
            low, _ = self._reader_consumer().get_watermark_offsets(TopicPartition(src, p), timeout=30.0,
                                                                   cached=False)
        except KafkaException as exc:
            raise StateError(f"cannot read the start of {src}[{p}]: {exc.args[0]}") from exc   # named by _replay
        return low

    def _restore_one(self, p: int) -> CardStore:
        """The state at p's last snapshot, read from the changelog (its marker: self._markers)."""
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
        self._markers.pop(p, None)
        self._read_with = []
        self._publish()
        if end > low:
            self._read_into(reader, store, p, low, end, started)
        store.discard_changes()
        marker, at = self._markers.get(p, (None, -1))
        if marker is not None and not (marker.watermark == store.watermark
                                       or (math.isnan(marker.watermark) and math.isnan(store.watermark))):
            raise StateError(f"{self.name}: the card state read from {self.topic}[{p}] has watermark "
                             f"{store.watermark!r}, its snapshot marker at {self.topic}[{p}]@{at} says "
                             f"{marker.watermark!r}: refusing to score this partition from an inconsistent state")
        if marker is not None:
            store.ahead = marker.ahead
        seconds = time.perf_counter() - started
        stats.active, stats.last_seconds, stats.last_records = 0, seconds, stats.records
        self._publish()
        log.info("%s: restored %s[%d]: %d cards from %d records in %.2f s (snapshot at input offset %s; "
                 "read with %s)", self.name, self.topic, p, len(store), stats.records, seconds,
                 marker.offset if marker is not None else "-", " then ".join(self._read_with) or "-")
        return store

    def _read_into(self, reader: Consumer, store: CardStore, p: int, low: int, end: int, started: float) -> None:
        # confluent-kafka's Messages are tracked by the garbage collector: 100,000 of them per
        # consume() set off collections that traverse every live one, 40% of a restore's CPU
        # (py-spy, 2026-12-06). A restore makes no reference cycles, so none runs meanwhile.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._read_chunks(reader, store, p, low, end, started)
        finally:
            if collecting:
                gc.enable()

    def _read_chunks(self, reader: Consumer, store: CardStore, p: int, low: int, end: int, started: float) -> None:
        stats = self.restore_stats
        report = started + _RESTORE_PROGRESS_S
        where = f"{self.topic}[{p}]"
        for chunk in read_partition(reader, self.topic, p, low, end, f"{self.name}: reading {where}",
                                    fast=self._fast):
            if chunk.reader not in self._read_with:
                self._read_with.append(chunk.reader)
            null = chunk.null_key_row()
            if null >= 0:
                raise StateError(f"{self.name}: undecodable card state at {where}@"
                                 f"{chunk.offsets[null]}: a record without a key")
            if chunk.has_key(MARKER_KEY):   # snapshot markers: not card states; the last one dates them
                chunk, self._markers[p] = take_markers(chunk, self.name, where)
            if len(chunk):
                data, starts, lengths = chunk.flat()
                try:
                    store.restore_flat(chunk.key_column(), data, starts, lengths)
                except StateRecordError as exc:
                    raise StateError(
                        f"{self.name}: undecodable card state at {where}@{chunk.offsets[exc.index]} "
                        f"({lengths[exc.index]} bytes): refusing to score this partition from an "
                        f"incomplete state") from None
                stats.records += len(chunk)
            now = time.perf_counter()
            if now >= report:
                report = now + _RESTORE_PROGRESS_S
                self._publish()
                log.info("%s: restoring %s: %d records, offset %d of %d", self.name, where,
                         stats.records, chunk.position, end)

    def _reader_consumer(self) -> Consumer:
        if self._reader is None:
            from core.rdkafkalog import QUIET_LOG_LEVEL
            from core.txn import reader_settings
            settings = reader_settings(self._config)
            # auto.offset.reset=error: input deleted since the snapshot must stop the replay
            # with an error, never replay from another offset.
            # Prefetch up to 1M records (librdkafka's default 100,000 left the reader waiting
            # for fetches): a 1M-record restore 2.2-2.5 s instead of 3.4-3.6 s with a core
            # free, the same when CPU-starved; ~200 MB more memory while it runs (2026-12-06).
            # Idle between restores, so never polled then: its connection errors on stderr while
            # Kafka is away would only repeat the group consumer's (core.rdkafkalog).
            settings.setdefault("log_level", QUIET_LOG_LEVEL)
            settings.update({"auto.offset.reset": "error",
                             "fetch.max.bytes": str(64 << 20), "fetch.wait.max.ms": "10",
                             "max.partition.fetch.bytes": str(16 << 20),
                             "queued.min.messages": "1000000", "queued.max.messages.kbytes": str(256 << 10)})
            self._reader = Consumer(settings)
            refusal = fast_refusal(settings)
            self._fast = refusal is None
            log.info("%s: card-state changelog reader: %s", self.name,
                     "the fast Fetch reader (librdkafka if it cannot go on)" if self._fast
                     else f"librdkafka ({refusal}: the fast Fetch reader serves PLAINTEXT only)")
        return self._reader

    def close(self) -> None:
        """Publish the final figures, not those of up to _PUBLISH_S ago (core.loop calls this
        before its consumer's close revokes the partitions), and close the changelog reader."""
        self._publish()
        if self._reader is not None:
            try:
                self._reader.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("%s: state reader close: %s", self.name, exc)
            self._reader = None
