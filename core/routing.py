"""Where each result of a scored micro-batch goes: scored events, alerts, dead letters.

Every output carries its input's key (the card hash, for per-card ordering) and its input's
headers unchanged. A dead letter is the original value untouched, with headers naming the
reason and the source coordinates, so nothing bad is ever dropped without a trace.
"""

from __future__ import annotations

from typing import Any, Sequence

from core.topics import TopicNames

__all__ = ["produce_outputs", "H_REASON", "H_SOURCE_TOPIC", "H_SOURCE_PARTITION", "H_SOURCE_OFFSET"]

H_REASON = "fraudstream.deadletter.reason"
H_SOURCE_TOPIC = "fraudstream.source.topic"
H_SOURCE_PARTITION = "fraudstream.source.partition"
H_SOURCE_OFFSET = "fraudstream.source.offset"


def _produce(producer: Any, topic: str, value: Any, key: Any, headers: Any) -> None:
    try:
        producer.produce(topic, value, key, headers=headers)
    except BufferError:
        # Local queue full: let librdkafka send some, then try once more (a second
        # BufferError propagates: the queue is sized far above any batch).
        producer.poll(0.5)
        producer.produce(topic, value, key, headers=headers)


def produce_outputs(producer: Any, topics: TopicNames, msgs: Sequence[Any], result: Any) -> None:
    """Produce every output of `result` (a core.Scorer BatchResult over `msgs`)."""
    scores, alerts = topics.scores, topics.alerts
    produce = producer.produce
    for idx, value in result.scored:
        msg = msgs[idx]
        try:
            produce(scores, value, msg.key(), headers=msg.headers())
        except BufferError:
            _produce(producer, scores, value, msg.key(), msg.headers())
    for idx, value in result.alerts:
        msg = msgs[idx]
        _produce(producer, alerts, value, msg.key(), msg.headers())
    for idx, reason in result.dead:
        msg = msgs[idx]
        headers = list(msg.headers() or ())
        headers += [(H_REASON, reason.encode("utf-8", "replace")),
                    (H_SOURCE_TOPIC, msg.topic().encode()),
                    (H_SOURCE_PARTITION, str(msg.partition()).encode()),
                    (H_SOURCE_OFFSET, str(msg.offset()).encode())]
        _produce(producer, topics.deadletter, msg.value(), msg.key(), headers)
