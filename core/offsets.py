"""Input offsets: what a transaction commits, and where a partition starts when its group has
no usable committed offset.

Committed offsets come from what was processed: for every partition with records in the
batch, its last processed offset + 1 - never the consumer's position() of the whole
assignment, which a rebalance served at the end of consume() can leave stale.

Start policy (ScoringConfig.offset_reset). A partition whose committed offset is missing or
out of range would, under librdkafka's usual auto.offset.reset=earliest, silently re-score
and re-alert all retained input. So by default ("refuse") the consumer runs with
auto.offset.reset=error and:

- a partition with no committed offset starts at its earliest record when the group is
  new (no committed offset on any input partition and nothing written to fraud-scores or
  fraud-deadletter yet) or when other partitions of the group have committed offsets (a
  partition added to the topic, or one that never had a record);
- otherwise - the group has no offsets left but its outputs exist (offsets expired after
  offsets.retention.minutes, or were deleted), or a committed offset is out of range
  (retention deleted the records it points to) - the partition is left paused, with one
  `error` line naming it and the fraudstream_offset_reset_refused counter; the others go on.

"earliest" or "latest" hand the choice to librdkafka for every partition, silently, as the
operator asked.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Collection, Sequence

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

__all__ = ["next_offsets", "decide_start", "plan_start", "refused_text", "is_reset_refused", "OFFSET_RESET_POLICIES",
           "offset_reset_refused", "offset_reset_paused"]

log = logging.getLogger(__name__)

OFFSET_RESET_POLICIES = ("refuse", "earliest", "latest")
# A new group's workers start seconds apart: when this worker finds no committed offset but
# outputs already written, a sibling's first transaction may just have committed its outputs and
# not yet its offsets. Looking again after this long tells that race from expired offsets.
_RECHECK_S = 3.0

_refused = None
_paused = None


def offset_reset_refused():
    """The counter of partitions left paused (created on first use, default registry)."""
    global _refused
    if _refused is None:
        from prometheus_client import Counter

        _refused = Counter("fraudstream_offset_reset_refused",
                           "Input partitions left paused: committed offset missing or out of range "
                           "(offset_reset: refuse)")
    return _refused


def offset_reset_paused():
    """The gauge of input partitions paused now by offset_reset refuse (created on first use,
    default registry; summed over live workers): what /healthz reads, where the counter above
    only counts refusals."""
    global _paused
    if _paused is None:
        from prometheus_client import Gauge

        _paused = Gauge("fraudstream_offset_reset_paused_partitions",
                        "Input partitions paused now: committed offset missing or out of range "
                        "(offset_reset: refuse)", multiprocess_mode="livesum")
    return _paused


def next_offsets(topic: str, msgs: Sequence[Any], assigned: Collection[int] = ()) -> list[TopicPartition]:
    """The offsets to commit for a processed batch: per partition present, last offset + 1.

    `msgs` holds each partition's records in offset order (as consume() returns them), so a
    partition's last record is its first one seen from the end. `assigned`: the partitions the
    batch can hold; once all of them are seen the scan stops (one process per partition: at
    the last record)."""
    last: dict[int, int] = {}
    left = len(assigned)
    for m in reversed(msgs):
        p = m.partition()
        if p not in last:
            last[p] = m.offset()
            if p in assigned:
                left -= 1
                if left == 0:
                    break
    return [TopicPartition(topic, p, o + 1) for p, o in last.items()]


def decide_start(assigned: Sequence[int], committed: dict[int, int], outputs_written: bool) -> tuple[list[int], list[int]]:
    """(partitions to start at their earliest record, partitions to refuse) among `assigned`
    that have no committed offset; `committed` covers every partition of the input topic
    (offset < 0: none). Partitions with a committed offset are in neither list."""
    without = [p for p in assigned if committed.get(p, -1) < 0]
    group_known = any(o >= 0 for o in committed.values())
    if group_known or not outputs_written:
        return without, []
    return [], without


def refused_text(name: str, topic: str, partitions: Sequence[int], why: str) -> str:
    which = (f"partition {partitions[0]} stays" if len(partitions) == 1 else
             f"partitions {', '.join(map(str, partitions))} stay")
    return (f"{name}: {topic}{list(partitions)}: {why}; {which} paused rather than be scored "
            f"again from the earliest record or skipped to the latest (offset_reset: refuse). Choose "
            f"with offset_reset: earliest | latest (--offset-reset), or set the group's offsets with "
            f"kafka-consumer-groups --reset-offsets, and restart")


def plan_start(name: str, topic: str, outputs: Sequence[str], partitions: list[TopicPartition],
               reader: dict) -> tuple[list[TopicPartition], set[int]]:
    """What on_assign assigns under offset_reset=refuse: `partitions` with OFFSET_BEGINNING set
    on those that start at the beginning, and the set of partitions refused (already logged
    and counted). Raises KafkaException when Kafka cannot answer (the worker then exits and
    its restart asks again). `reader`: settings of an assign()-only reader of the group
    (core.txn.reader_settings) that asks for the committed offsets and looks for committed
    output records.

    It asks through a client of its own, never the group's consumer: on_assign runs inside that
    consumer's consume(), and a blocking call of confluent-kafka on the same client (committed,
    list_topics, get_watermark_offsets) clears the state consume() keeps for its callbacks, so a
    second callback of that consume() (a revoke right after this assignment: seen when the
    topics were deleted and created again) aborted the worker (SIGABRT, "CallState_get:
    Assertion `cs != NULL' failed")."""
    from confluent_kafka import Consumer

    probe = Consumer(reader)
    try:
        return _plan(probe, name, topic, outputs, partitions)
    finally:
        probe.close()


def _plan(probe: Any, name: str, topic: str, outputs: Sequence[str], partitions: list[TopicPartition]
          ) -> tuple[list[TopicPartition], set[int]]:
    assigned = [tp.partition for tp in partitions]
    all_parts = sorted(probe.list_topics(topic, timeout=10.0).topics[topic].partitions)
    committed = _committed(probe, topic, all_parts)
    if all(committed.get(p, -1) >= 0 for p in assigned):
        return partitions, set()
    written = _outputs_written(probe, outputs)
    start, refused = decide_start(assigned, committed, written)
    if refused:
        time.sleep(_RECHECK_S)
        start, refused = decide_start(assigned, _committed(probe, topic, all_parts), written)
    if refused:
        log.error("%s", refused_text(name, topic, sorted(refused), "the group has no committed offsets for them, but "
                                     f"{' / '.join(outputs)} already hold records (its offsets expired or were deleted, "
                                     "or it is a new group on topics another group scored)"))
        offset_reset_refused().inc(len(refused))
    if start:
        log.info("%s: %s %s: no committed offset yet, starting at the earliest record", name, topic, sorted(start))
    begin = set(start)
    return ([TopicPartition(topic, tp.partition, OFFSET_BEGINNING) if tp.partition in begin else tp
             for tp in partitions], set(refused))


def _committed(consumer: Any, topic: str, parts: Sequence[int]) -> dict[int, int]:
    got = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=10.0)
    return {tp.partition: tp.offset for tp in got}


def _outputs_written(probe: Any, outputs: Sequence[str]) -> bool:
    """Whether any output partition holds a committed record. The high watermark alone is not
    enough: a first transaction that aborted (a fault injected, a worker killed) leaves records
    no read_committed reader sees and no offset committed, and the partitions would be refused
    for good on a fresh group. So partitions with records are read, read_committed, up to
    their first record (a few seconds at most; if they cannot be, they count as written)."""
    meta = probe.list_topics(timeout=10.0).topics
    held = []
    for topic in outputs:
        for p in meta[topic].partitions:
            low, high = probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10.0)
            if high > low:
                held.append(TopicPartition(topic, p, low))
    return bool(held) and _any_committed(probe, held)


def _any_committed(probe: Any, partitions: list[TopicPartition], timeout_s: float = 10.0) -> bool:
    probe.assign(partitions)
    left = {(tp.topic, tp.partition) for tp in partitions}
    deadline = time.monotonic() + timeout_s
    while left and time.monotonic() < deadline:
        for m in probe.consume(num_messages=100, timeout=0.2):
            error = m.error()
            if error is None:
                return True
            if error.code() == KafkaError._PARTITION_EOF:
                left.discard((m.topic(), m.partition()))
    return bool(left)   # unread partitions count as written: refuse rather than re-score


def is_reset_refused(error: KafkaError) -> bool:
    """A consumer error event saying librdkafka would have reset an offset (auto.offset.reset=error)."""
    return error.code() == KafkaError._AUTO_OFFSET_RESET

