"""Small real-Kafka helpers for integration tests: read a topic to the end, read_committed."""

import time
import uuid

from confluent_kafka import Consumer, TopicPartition


def read_all(bootstrap: str, topic: str, *, idle_s: float = 3.0, max_s: float = 120.0,
             expect: int | None = None, committed: bool = True):
    """Every committed record of `topic` from the beginning, as Message objects.

    Stops when every partition is at its end (read_committed: the last stable offset) and no
    record came for 1 s once `expect` records arrived, or for `idle_s` seconds otherwise. With
    `committed=False` the records of aborted transactions come too (read_uncommitted).
    """
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
        "isolation.level": "read_committed" if committed else "read_uncommitted",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    meta = consumer.list_topics(topic, timeout=30).topics[topic]
    parts = [TopicPartition(topic, p, 0) for p in meta.partitions]
    consumer.assign(parts)
    records, at_eof = [], set()
    deadline = time.monotonic() + max_s
    last_record = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msgs = consumer.consume(num_messages=10_000, timeout=0.5)
            for msg in msgs:
                if msg.error():
                    if msg.error().code() == -191:  # _PARTITION_EOF
                        at_eof.add(msg.partition())
                        continue
                    raise RuntimeError(f"consume error: {msg.error()}")
                at_eof.discard(msg.partition())
                records.append(msg)
                last_record = time.monotonic()
            at_end = len(at_eof) == len(parts)
            if expect is not None and len(records) >= expect:
                # read every partition to its end, so duplicates beyond `expect` show up too
                if at_end and time.monotonic() - last_record > 1.0:
                    break
            elif at_end and time.monotonic() - last_record > idle_s:
                break
    finally:
        consumer.close()
    return records
