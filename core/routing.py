"""Where each result of a scored micro-batch goes: scored events, alerts, dead letters.

Every output carries its input's key (the card hash, for per-card ordering) and its input's
headers unchanged. A dead letter is the original value untouched (unless it would exceed the
producer's size limit: then cut, see dead_letter), with headers naming the reason and the
source coordinates, so nothing bad is ever dropped without a trace.
"""

from __future__ import annotations

from typing import Any, Sequence

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

DEFAULT_MAX_MESSAGE_BYTES = 1_000_000   # librdkafka's message.max.bytes
# Hot loops pass Producer.produce every argument by position: topic, value, key, partition,
# callback, on_delivery, timestamp, headers. confluent-kafka parses them with
# PyArg_ParseTupleAndKeywords, which builds and hashes a str for each keyword not given by
# position: with `headers=` a call took 2.6 µs, by position 1.9 µs. The partition below, None
# callbacks and timestamp 0 are produce()'s own defaults (the partitioner, the client's
# on_delivery, now).
ANY_PARTITION = -1   # RD_KAFKA_PARTITION_UA

# librdkafka counts a record's key, value and headers plus the batch and record framing
# against message.max.bytes; these bound the framing from above.
_RECORD_OVERHEAD = 128
_HEADER_OVERHEAD = 16
_MARKS_RESERVE = 3 * (64 + 20 + _HEADER_OVERHEAD)   # room for the three cut/drop headers


def _produce(producer: Any, topic: str, value: Any, key: Any, headers: Any) -> None:
    try:
        producer.produce(topic, value, key, ANY_PARTITION, None, None, 0, headers)
    except BufferError:
        # Local queue full: let librdkafka send some, then try once more (a second
        # BufferError propagates: the queue is sized far above any batch).
        producer.poll(0.5)
        producer.produce(topic, value, key, ANY_PARTITION, None, None, 0, headers)


def produce_outputs(producer: Any, topics: TopicNames, msgs: Sequence[Any], result: Any,
                    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
    """Produce every output of `result` (a core.Scorer BatchResult over `msgs`)."""
    scores, alerts = topics.scores, topics.alerts
    produce = producer.produce
    for idx, value in result.scored:
        msg = msgs[idx]
        try:
            produce(scores, value, msg.key(), ANY_PARTITION, None, None, 0, msg.headers())
        except BufferError:
            _produce(producer, scores, value, msg.key(), msg.headers())
    for idx, value in result.alerts:
        msg = msgs[idx]
        _produce(producer, alerts, value, msg.key(), msg.headers())
    for idx, reason in result.dead:
        msg = msgs[idx]
        key, value, headers = dead_letter(msg, reason, max_message_bytes)
        _produce(producer, topics.deadletter, value, key, headers)


def dead_letter(msg: Any, reason: str, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> tuple[Any, Any, list]:
    """Key, value and headers of `msg`'s dead letter: the original key, value and headers, plus
    the reason and source coordinates. What would not fit the producer's message.max.bytes is
    cut, least important first - the value (H_TRUNCATED_FROM: its length), then the original
    headers (H_HEADERS_DROPPED: how many), then the key (H_KEY_TRUNCATED_FROM) - so a bad
    record can never make its own dead letter fail; the whole record stays at the source
    coordinates the headers give."""
    ours = [(H_REASON, reason.encode("utf-8", "replace")),
            (H_SOURCE_TOPIC, msg.topic().encode()),
            (H_SOURCE_PARTITION, str(msg.partition()).encode()),
            (H_SOURCE_OFFSET, str(msg.offset()).encode())]
    original = list(msg.headers() or ())
    key, value = msg.key(), msg.value()
    budget = max_message_bytes - _RECORD_OVERHEAD - _headers_size(ours) - _MARKS_RESERVE
    marks = []
    if key is not None and len(key) > budget:
        marks.append((H_KEY_TRUNCATED_FROM, str(len(key)).encode()))
        key = key[:max(budget, 0)]
    budget -= len(key or b"")
    if _headers_size(original) > budget:
        marks.append((H_HEADERS_DROPPED, str(len(original)).encode()))
        original = []
    budget -= _headers_size(original)
    if value is not None and len(value) > budget:
        marks.append((H_TRUNCATED_FROM, str(len(value)).encode()))
        value = value[:max(budget, 0)]
    return key, value, original + ours + marks


def _headers_size(headers: list) -> int:
    """Bytes librdkafka counts for these headers, framing included (bounded from above)."""
    return sum(len(k.encode() if isinstance(k, str) else k) + len(v or b"") + _HEADER_OVERHEAD
               for k, v in headers)
