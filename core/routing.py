"""Where each result of a scored micro-batch goes: scored events, alerts, dead letters.

Every output carries its input's key (the card hash, for per-card ordering) and its input's
headers unchanged. A dead letter is the original value untouched (unless it would exceed the
dead-letter topic's size limit: then cut, see dead_letter), with headers naming the reason and
the source coordinates, so nothing bad is ever dropped without a trace.

An input whose scored event or alert would be too large for its topic (core.limits) is a
per-record problem like bad JSON: it becomes a dead letter with an `output_too_large` reason
in the same transaction, and none of its outputs is produced. Alerts are measured before
anything is produced (they are few); scored events are measured by librdkafka's own size
check in produce(), which costs nothing extra, and in Python only for a topic whose
max.message.bytes is below the producer's limit.
"""

from __future__ import annotations

from typing import Any, Sequence

from confluent_kafka import KafkaError, KafkaException

from core.limits import DEFAULT_MAX_MESSAGE_BYTES, RECORD_OVERHEAD, OutputLimits, headers_size, too_large, wire_size
from core.topics import TopicNames

__all__ = ["produce_outputs", "dead_letter", "ANY_PARTITION", "H_REASON", "H_SOURCE_TOPIC", "H_SOURCE_PARTITION",
           "H_SOURCE_OFFSET", "H_TRUNCATED_FROM", "H_HEADERS_DROPPED", "H_KEY_TRUNCATED_FROM",
           "DEFAULT_MAX_MESSAGE_BYTES"]

H_REASON = "fraudstream.deadletter.reason"
H_SOURCE_TOPIC = "fraudstream.source.topic"
H_SOURCE_PARTITION = "fraudstream.source.partition"
H_SOURCE_OFFSET = "fraudstream.source.offset"
H_TRUNCATED_FROM = "fraudstream.deadletter.truncated_from"
H_HEADERS_DROPPED = "fraudstream.deadletter.headers_dropped"
H_KEY_TRUNCATED_FROM = "fraudstream.deadletter.key_truncated_from"

# Hot loops pass Producer.produce every argument by position: topic, value, key, partition,
# callback, on_delivery, timestamp, headers. confluent-kafka parses them with
# PyArg_ParseTupleAndKeywords, which builds and hashes a str for each keyword not given by
# position: with `headers=` a call took 2.6 µs, by position 1.9 µs. The partition below, None
# callbacks and timestamp 0 are produce()'s own defaults (the partitioner, the client's
# on_delivery, now).
ANY_PARTITION = -1   # RD_KAFKA_PARTITION_UA

# Room for the three cut/drop headers a dead letter may gain: name, decimal length, varints.
_MARKS_RESERVE = 3 * (64 + 20 + 10)


def _produce(producer: Any, topic: str, value: Any, key: Any, headers: Any) -> None:
    try:
        producer.produce(topic, value, key, ANY_PARTITION, None, None, 0, headers)
    except BufferError:
        # Local queue full: let librdkafka send some, then try once more (a second
        # BufferError propagates: the queue is sized far above any batch).
        producer.poll(0.5)
        producer.produce(topic, value, key, ANY_PARTITION, None, None, 0, headers)


def _refused_for_size(exc: KafkaException) -> bool:
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() == KafkaError.MSG_SIZE_TOO_LARGE


def produce_outputs(producer: Any, topics: TopicNames, msgs: Sequence[Any], result: Any,
                    limits: OutputLimits | None = None, divert: dict[int, str] | None = None) -> dict[int, str]:
    """Produce every output of `result` (a core.Scorer BatchResult over `msgs`).

    `divert`: input index -> reason, inputs to dead-letter instead of scoring (see core.culprits).
    Returns the scored inputs that became dead letters instead (index -> reason: too large, or
    diverted); a KafkaException other than a record's size propagates (the caller aborts)."""
    limits = limits or OutputLimits.uniform(topics)
    scores, alerts = topics.scores, topics.alerts
    diverted: dict[int, str] = {}
    if divert:   # only inputs that scored: a bad one is a dead letter with its own reason anyway
        bad = {idx for idx, _ in result.dead}
        diverted = {idx: reason for idx, reason in divert.items() if idx not in bad}
    if result.alerts:
        limit = limits.of(alerts)
        for idx, value in result.alerts:
            msg = msgs[idx]
            size = wire_size(msg.key(), value, msg.headers())
            if size > limit:
                diverted[idx] = too_large(alerts, size, limit)
    if diverted or limits.checked_here(scores):
        _produce_scores_checked(producer, scores, msgs, result.scored, limits.of(scores), diverted)
    else:
        produce = producer.produce
        for idx, value in result.scored:
            msg = msgs[idx]
            try:
                produce(scores, value, msg.key(), ANY_PARTITION, None, None, 0, msg.headers())
            except BufferError:
                _produce(producer, scores, value, msg.key(), msg.headers())
            except KafkaException as exc:   # librdkafka's size check: nothing was queued
                if not _refused_for_size(exc):
                    raise
                diverted[idx] = too_large(scores, wire_size(msg.key(), value, msg.headers()), limits.of(scores))
    for idx, value in result.alerts:
        if idx not in diverted:
            msg = msgs[idx]
            _produce(producer, alerts, value, msg.key(), msg.headers())
    dl_limit = limits.of(topics.deadletter)
    for idx, reason in result.dead:
        key, value, headers = dead_letter(msgs[idx], reason, dl_limit)
        _produce(producer, topics.deadletter, value, key, headers)
    for idx, reason in diverted.items():
        key, value, headers = dead_letter(msgs[idx], reason, dl_limit)
        _produce(producer, topics.deadletter, value, key, headers)
    return diverted


def _produce_scores_checked(producer: Any, topic: str, msgs: Sequence[Any], scored: Sequence[Any], limit: int,
                            diverted: dict[int, str]) -> None:
    """The scored events, each measured first; the slow path, taken only when some inputs are
    diverted or the topic takes less than librdkafka's own check lets through."""
    for idx, value in scored:
        if idx in diverted:
            continue
        msg = msgs[idx]
        key, headers = msg.key(), msg.headers()
        size = wire_size(key, value, headers)
        if size > limit:
            diverted[idx] = too_large(topic, size, limit)
            continue
        _produce(producer, topic, value, key, headers)


def dead_letter(msg: Any, reason: str, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> tuple[Any, Any, list]:
    """Key, value and headers of `msg`'s dead letter: the original key, value and headers, plus
    the reason and source coordinates. What would not fit `max_message_bytes` (the dead-letter
    topic's limit, core.limits: the producer's and the topic's, whichever is smaller) is cut,
    least important first - the value (H_TRUNCATED_FROM: its length), then the original headers,
    largest first (H_HEADERS_DROPPED: how many), then the key (H_KEY_TRUNCATED_FROM); a key that alone exceeds
    the limit is cut at once, to what leaves room for the value - so a bad record can never make
    its own dead letter fail; the whole record stays at the source coordinates the headers give."""
    ours = [(H_REASON, reason.encode("utf-8", "replace")),
            (H_SOURCE_TOPIC, msg.topic().encode()),
            (H_SOURCE_PARTITION, str(msg.partition()).encode()),
            (H_SOURCE_OFFSET, str(msg.offset()).encode())]
    original = list(msg.headers() or ())
    key, value = msg.key(), msg.value()
    budget = max_message_bytes - RECORD_OVERHEAD - headers_size(ours) - _MARKS_RESERVE
    marks = []
    if key is not None and len(key) > budget:
        # A key that alone does not fit gives way to the original value (what a replay needs),
        # and to the original headers when they fit beside it.
        room = len(value or b"")
        if room + headers_size(original) <= budget:
            room += headers_size(original)
        marks.append((H_KEY_TRUNCATED_FROM, str(len(key)).encode()))
        key = key[:max(budget - room, 0)]
    budget -= len(key or b"")
    if headers_size(original) > budget:
        # the largest go first: small ones (trace context, ids) usually still fit
        kept, room = set(), budget
        for i in sorted(range(len(original)), key=lambda i: headers_size(original[i:i + 1])):
            size = headers_size(original[i:i + 1])
            if size <= room:
                kept.add(i)
                room -= size
        marks.append((H_HEADERS_DROPPED, str(len(original) - len(kept)).encode()))
        original = [h for i, h in enumerate(original) if i in kept]
    budget -= headers_size(original)
    if value is not None and len(value) > budget:
        marks.append((H_TRUNCATED_FROM, str(len(value)).encode()))
        value = value[:max(budget, 0)]
    return key, value, original + ours + marks

