"""`bench passthrough`: raw records/s through the broker with confluent-kafka, no scoring.

The physical ceiling every pipeline benchmark on this machine is held against. With
`--header` each record carries the load generator's 24-byte `bench` header and the reader
takes it out with `headers()`, as `bench run`'s generator, scorer and sink do (produce()'s
arguments by position, as they pass them: see core.routing.ANY_PARTITION): the two runs
side by side give what per-record headers cost the client (CPU per record, this process's
threads included, librdkafka's among them).
"""

import os
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.load.header import HEADER, pack_header
from core.routing import ANY_PARTITION

__all__ = ["measure_passthrough"]

PRODUCER = {"linger.ms": 5, "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000,
            "acks": "all", "enable.idempotence": True}
CONSUMER = {"fetch.min.bytes": 1, "queued.min.messages": 200_000,
            "isolation.level": "read_committed", "auto.offset.reset": "earliest",
            "enable.auto.commit": False}


def measure_passthrough(bootstrap: str, records: int, size: int, partitions: int = 6,
                        header: bool = False) -> dict:
    """Produce `records` values of `size` bytes to a new topic, then consume them all; with
    `header`, each with a `bench` header that the reader takes out again."""
    topic = f"passthrough-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result()
    try:
        payload = os.urandom(size // 2).hex().encode()[:size]
        keys = [f"card-{i:05d}".encode() for i in range(10_000)]
        producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER})
        t0, cpu0 = time.perf_counter(), time.process_time()
        for i in range(records):
            while True:
                try:
                    if header:
                        producer.produce(topic, payload, keys[i % 10_000], ANY_PARTITION, None, None,
                                         0, [(HEADER, pack_header(time.time_ns(), i, 0))])
                    else:
                        producer.produce(topic, payload, keys[i % 10_000])
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.flush(120)
        produce_s, produce_cpu = time.perf_counter() - t0, time.process_time() - cpu0

        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic, **CONSUMER})
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got = with_header = 0
        t0, cpu0 = time.perf_counter(), time.process_time()
        deadline = t0 + 300
        while got < records and time.perf_counter() < deadline:
            msgs = [m for m in consumer.consume(10_000, 1.0) if not m.error()]
            got += len(msgs)
            if header:
                with_header += sum(1 for h in [m.headers() for m in msgs] if h and h[0][0] == HEADER)
        consume_s, consume_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        consumer.close()
    finally:
        admin.delete_topics([topic])
    return {"records": records, "size": size, "consumed": got, "header": header,
            "consumed_with_header": with_header,
            "produce_per_s": records / produce_s, "consume_per_s": got / consume_s,
            "produce_cpu_us": produce_cpu / records * 1e6,
            "consume_cpu_us": consume_cpu / max(got, 1) * 1e6,
            "produce_mb_s": records * size / produce_s / 1e6,
            "consume_mb_s": got * size / consume_s / 1e6}
