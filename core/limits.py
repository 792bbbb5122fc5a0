"""How large an output record may be, per output topic, and how large a record is.

Two limits apply to every record the scorer produces, and the smaller wins:

- the producer's `message.max.bytes` (librdkafka refuses a larger record in produce(), and
  never builds a larger batch);
- the output topic's `max.message.bytes` (the broker rejects a larger record *batch*, and
  inside a transaction that rejection makes the whole transaction abortable).

Sizes are counted the way librdkafka counts them before it accepts a record
(rd_kafka_msg_max_wire_size): key + value + serialized headers + 36 bytes, the most a v2
record's framing can take. The broker judges the record batch, which adds a 61-byte batch
header to that; so a topic limit T allows records of at most T - 61 by this count. Both are
upper bounds of the real encoding (varints are counted at their largest), so a record that
passes here is never refused for its size by librdkafka or the broker; at worst a record a
few dozen bytes under the true limit becomes a dead letter. Compression only makes the
real batch smaller.

The topic limits are read once at start-up (AdminClient.describe_configs).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from typing import Any, Iterable

import msgspec

from core.topics import TopicNames

__all__ = ["OutputLimits", "wire_size", "headers_size", "too_large", "read_topic_configs",
           "describe_topic_configs", "output_limits_of", "RECORD_OVERHEAD", "BATCH_OVERHEAD",
           "DEFAULT_MAX_MESSAGE_BYTES"]

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 1_000_000   # librdkafka's message.max.bytes
# RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD: length, attributes, timestamp/offset deltas, key and
# value lengths and the header count, each varint at its largest (5 + 1 + 10 + 4 * 5).
RECORD_OVERHEAD = 36
# A v2 record batch header with the log's offset and length fields (RecordBatch.RECORD_BATCH_OVERHEAD).
BATCH_OVERHEAD = 61


def _varint_size(n: int) -> int:
    # zig-zag varint of a non-negative length, as librdkafka sizes each header
    z = n << 1
    size = 1
    while z >= 0x80:
        z >>= 7
        size += 1
    return size


def headers_size(headers: Iterable[tuple[Any, Any]] | None) -> int:
    """Bytes of these headers in a v2 record (librdkafka's rd_kafka_headers_serialized_size)."""
    if not headers:
        return 0
    total = 0
    for name, value in headers:
        n = len(name.encode() if isinstance(name, str) else name)
        v = len(value.encode() if isinstance(value, str) else value) if value is not None else 0
        total += n + v + _varint_size(n) + _varint_size(v)
    return total


def wire_size(key: bytes | None, value: bytes | None, headers: Any) -> int:
    """The size librdkafka checks against message.max.bytes for this record."""
    return RECORD_OVERHEAD + len(key or b"") + len(value or b"") + headers_size(headers)


def too_large(topic: str, size: int, limit: int) -> str:
    """Dead-letter reason of an input whose output for `topic` would not fit."""
    return f"output_too_large: {topic} {size:,} > {limit:,} bytes"


class OutputLimits(msgspec.Struct, frozen=True):
    """Largest wire_size() each output topic accepts, and the producer's own limit.

    by_topic: topic -> limit, min(client, topic max.message.bytes - BATCH_OVERHEAD).
    client:   the producer's message.max.bytes, which librdkafka itself enforces in produce().
    batch_cap: a batch.size for the producer when a topic accepts smaller batches than the
              producer would build (None: leave batch.size alone).
    """

    by_topic: dict[str, int]
    client: int
    batch_cap: int | None = None

    @classmethod
    def uniform(cls, topics: TopicNames, client: int = DEFAULT_MAX_MESSAGE_BYTES) -> "OutputLimits":
        """Limits when every output topic accepts what the producer may send."""
        return cls({t: client for t in (topics.scores, topics.alerts, topics.deadletter)}, client)

    def of(self, topic: str) -> int:
        return self.by_topic.get(topic, self.client)

    def checked_here(self, topic: str) -> bool:
        """True when `topic` takes less than librdkafka's own check lets through, so each
        record must be measured in Python before produce (never the case with default configs)."""
        return self.of(topic) < self.client


def limits_from(client: int, batch_size: int, topic_max: dict[str, int]) -> OutputLimits:
    """OutputLimits from the producer's message.max.bytes and batch.size and each output
    topic's max.message.bytes (pure; read_topic_configs asks the broker)."""
    by_topic = {t: min(client, m - BATCH_OVERHEAD) for t, m in topic_max.items()}
    smallest = min(topic_max.values(), default=batch_size + BATCH_OVERHEAD) - BATCH_OVERHEAD
    # librdkafka fills a batch up to batch.size: many small records to a topic with a smaller
    # max.message.bytes would be rejected together, every one of them innocent.
    cap = smallest if smallest < batch_size else None
    return OutputLimits(by_topic, client, cap)


CONFIGS_TIMEOUT_S = 15.0   # how long the start-up read of the topics' configs waits for Kafka


def read_topic_configs(admin_settings: dict[str, Any], names: tuple[str, ...], timeout: float = CONFIGS_TIMEOUT_S,
                       stopping: threading.Event | None = None) -> dict[str, dict[str, str | None]] | None:
    """Each topic's configs, in one DescribeConfigs request (once, at start-up); None when
    `stopping` is set before the answer.

    Raises KafkaException when the broker answers with an error, TimeoutError when no answer
    comes within `timeout` (Kafka unreachable)."""
    from confluent_kafka.admin import AdminClient

    from core.rdkafkalog import QUIET_LOG_LEVEL

    # Critical lines only: not the notice "Purging 1 unserved events from background queue" this
    # short-lived client's end prints, nor a refused connection every 50 ms while Kafka is away
    # (570 lines from one worker starting during an outage): the caller's error says it once
    # (-X log_level still wins).
    admin = AdminClient({"log_level": QUIET_LOG_LEVEL, **admin_settings})   # held until the answers: its end cancels the request
    return describe_topic_configs(admin, names, timeout, stopping)


def describe_topic_configs(admin: Any, names: tuple[str, ...], timeout: float = CONFIGS_TIMEOUT_S,
                           stopping: threading.Event | None = None) -> dict[str, dict[str, str | None]] | None:
    """read_topic_configs with an AdminClient the caller already holds."""
    from confluent_kafka.admin import ConfigResource

    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in names],
                                     request_timeout=timeout)
    if not _wait_all(futures.values(), timeout, stopping):
        return None
    return {r.name: {k: e.value for k, e in f.result(0).items()} for r, f in futures.items()}


def _wait_all(futures: Iterable[concurrent.futures.Future], timeout: float,
              stopping: threading.Event | None) -> bool:
    """Wait for every future, in short steps so that a stop() is honoured within 0.2 s; False
    when `stopping` is set first, TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    pending = set(futures)
    while pending:
        if stopping is not None and stopping.is_set():
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer in {timeout:g} s")
        _, pending = concurrent.futures.wait(pending, timeout=min(0.2, left))
    return True


def output_limits_of(configs: dict[str, dict[str, str | None]], client: int, batch_size: int) -> OutputLimits:
    """OutputLimits from the topics' configs read by read_topic_configs (their max.message.bytes)."""
    topic_max = {t: int(c["max.message.bytes"]) for t, c in configs.items() if c.get("max.message.bytes") is not None}
    limits = limits_from(client, batch_size, topic_max)
    small = {t: m for t, m in topic_max.items() if m - BATCH_OVERHEAD < client}
    if small:
        log.info("output topic limits below the producer's message.max.bytes %d: %s%s", client,
                 ", ".join(f"{t} max.message.bytes={m}" for t, m in small.items()),
                 f"; producer batch.size capped at {limits.batch_cap}" if limits.batch_cap else "")
    return limits
