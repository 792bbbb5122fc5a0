"""`bench passthrough`: raw records/s through the broker with confluent-kafka, no scoring.

The physical ceiling every pipeline benchmark on this machine is held against.
"""

import os
import time
import uuid

import click
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.topics import require_broker

__all__ = ["measure_passthrough", "passthrough"]

PRODUCER = {"linger.ms": 5, "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000,
            "acks": "all", "enable.idempotence": True}
CONSUMER = {"fetch.min.bytes": 1, "queued.min.messages": 200_000,
            "isolation.level": "read_committed", "auto.offset.reset": "earliest",
            "enable.auto.commit": False}


def measure_passthrough(bootstrap: str, records: int, size: int, partitions: int = 6) -> dict:
    """Produce `records` values of `size` bytes to a new topic, then consume them all."""
    topic = f"passthrough-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result()
    try:
        payload = os.urandom(size // 2).hex().encode()[:size]
        keys = [f"card-{i:05d}".encode() for i in range(10_000)]
        producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER})
        t0 = time.perf_counter()
        for i in range(records):
            while True:
                try:
                    producer.produce(topic, payload, keys[i % 10_000])
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.flush(120)
        produce_s = time.perf_counter() - t0

        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic, **CONSUMER})
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got, t0 = 0, time.perf_counter()
        deadline = t0 + 300
        while got < records and time.perf_counter() < deadline:
            got += sum(1 for m in consumer.consume(10_000, 1.0) if not m.error())
        consume_s = time.perf_counter() - t0
        consumer.close()
    finally:
        admin.delete_topics([topic])
    return {"records": records, "size": size, "consumed": got,
            "produce_per_s": records / produce_s, "consume_per_s": got / consume_s,
            "produce_mb_s": records * size / produce_s / 1e6,
            "consume_mb_s": got * size / consume_s / 1e6}


@click.command()
@click.option("--bootstrap", default="127.0.0.1:9092", show_default=True,
              envvar="FRAUDSTREAM_BOOTSTRAP", help="Kafka bootstrap servers.")
@click.option("--records", type=click.IntRange(1), default=1_000_000, show_default=True, help="How many records.")
@click.option("--size", type=click.IntRange(1, 1_000_000), default=800, show_default=True,
              help="Value size in bytes.")
def passthrough(bootstrap, records, size):
    """Raw produce and consume rate through the broker, no scoring: the ceiling.

    \b
    Example:
      bench passthrough --records 1000000 --size 800
    """
    require_broker(bootstrap)
    click.echo(f"producing {records:,} x {size} B records to {bootstrap} ...", err=True)
    r = measure_passthrough(bootstrap, records, size)
    click.echo(f"produce  {r['produce_per_s']:>10,.0f} records/s  {r['produce_mb_s']:6.1f} MB/s")
    click.echo(f"consume  {r['consume_per_s']:>10,.0f} records/s  {r['consume_mb_s']:6.1f} MB/s"
               f"  ({r['consumed']:,} of {records:,})")
    if r["consumed"] != records:
        raise click.ClickException("not every record came back")
