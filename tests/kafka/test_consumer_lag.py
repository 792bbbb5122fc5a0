"""core.metrics.consumer_lag (the fraudstream_lag gauge) against a real broker: the records past
the consumer's positions on its assigned partitions, as the watermarks it fetched say."""

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from core.metrics import UNFETCHED_WATERMARKS_S, consumer_lag

pytestmark = pytest.mark.kafka


def _fill(bootstrap: str, topic: str, records: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(records):
        producer.produce(topic, b"x", key=str(i).encode())
    assert producer.flush(30) == 0


def test_lag_counts_what_the_consumer_has_not_read(kafka_bootstrap, fresh_topics):
    topic = fresh_topics("lag").transactions
    _fill(kafka_bootstrap, topic, 600)
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"lag-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    parts = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    read = 0
    deadline = time.monotonic() + 30
    while read < 250 and time.monotonic() < deadline:
        read += sum(1 for m in consumer.consume(num_messages=250 - read, timeout=1) if not m.error())
    assert read == 250
    lag = None
    while time.monotonic() < deadline:   # the fetched high watermarks reach the cache
        lag = consumer_lag(consumer)
        if lag == 350:
            break
        time.sleep(0.2)
    consumer.close()
    assert lag == 350


def test_a_partition_idle_since_assigned_lags_from_the_committed_offset(kafka_bootstrap, fresh_topics):
    """After a restart, a partition that receives nothing has no position: its lag is what lies
    past the group's committed offset (0 here), not the topic's whole history (600 before)."""
    topic = fresh_topics("lagidle").transactions
    group = f"lag-{uuid.uuid4().hex[:8]}"
    _fill(kafka_bootstrap, topic, 600)
    settings = {"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False}
    first = Consumer(settings)
    parts = first.list_topics(topic, timeout=30).topics[topic].partitions
    ends = {p: first.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    first.commit(offsets=[TopicPartition(topic, p, ends[p] - (5 if p == 0 else 0)) for p in parts], asynchronous=False)
    first.close()
    restarted = Consumer(settings)
    restarted.assign([TopicPartition(topic, p) for p in parts])   # from the committed offsets
    cache: dict = {}
    lag = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        restarted.consume(num_messages=1, timeout=0.5)   # at most partition 0's 5 records come
        lag = consumer_lag(restarted, cache)
        if lag is not None and lag <= 5 and all(   # every high watermark known: a lag of all partitions
                restarted.get_watermark_offsets(TopicPartition(topic, p), cached=True)[1] >= 0 for p in parts):
            break
        time.sleep(0.2)
    restarted.close()
    assert lag is not None and lag <= 5, lag


def test_a_paused_partition_that_never_fetched_counts_what_it_holds(kafka_bootstrap, fresh_topics):
    """A partition refused by offset_reset=refuse is paused before its first fetch, so the client
    never learns its high watermark: its lag counted 0 (the stats line said lag=0 over 131,000
    unscored records). Its watermarks are asked instead, and again after UNFETCHED_WATERMARKS_S:
    its lag grows with what is produced while it stays paused."""
    topic = fresh_topics("lagpaused").transactions
    _fill(kafka_bootstrap, topic, 600)
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"lag-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "error"})
    parts = [TopicPartition(topic, p) for p in consumer.list_topics(topic, timeout=30).topics[topic].partitions]
    consumer.assign(parts)
    consumer.pause(parts)
    for _ in range(6):   # the loop goes on consuming its other partitions meanwhile
        consumer.consume(num_messages=10, timeout=0.5)
    highs: dict = {}
    lag = consumer_lag(consumer, {}, highs, now=100.0)
    _fill(kafka_bootstrap, topic, 50)
    kept = consumer_lag(consumer, {}, highs, now=100.0 + UNFETCHED_WATERMARKS_S / 2)
    grown = consumer_lag(consumer, {}, highs, now=100.0 + UNFETCHED_WATERMARKS_S)
    consumer.close()
    assert (lag, kept, grown) == (600, 600, 650)
