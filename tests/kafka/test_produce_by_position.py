"""The hot loops call Producer.produce with every argument by position (core.routing.ANY_PARTITION
says why). Against the installed client and a real broker, such a record must land exactly as
one produced with keywords: same key, same headers, same partition for the same key, and a
failed delivery must still reach the client's on_delivery."""

import pytest
from confluent_kafka import Producer

from core.routing import ANY_PARTITION
from tests.kafka.kafka_io import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def test_positional_produce_lands_like_keywords(kafka_bootstrap, fresh_topics):
    topic = fresh_topics("bypos").scores          # 6 partitions
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    keys = [f"card-{i}".encode() for i in range(40)]
    for i, key in enumerate(keys):
        producer.produce(topic, b"kw-%d" % i, key, headers=[("h", b"kw-%d" % i)])
        producer.produce(topic, b"pos-%d" % i, key, ANY_PARTITION, None, None, 0, [("h", b"pos-%d" % i)])
    assert producer.flush(30) == 0

    records = read_all(kafka_bootstrap, topic, expect=2 * len(keys))
    assert len(records) == 2 * len(keys)
    got = {m.value(): m for m in records}
    partitions = set()
    for i, key in enumerate(keys):
        kw, pos = got[b"kw-%d" % i], got[b"pos-%d" % i]
        assert pos.key() == kw.key() == key
        assert pos.headers() == [("h", b"pos-%d" % i)]
        assert pos.partition() == kw.partition()
        assert pos.timestamp()[1] > 0
        partitions.add(pos.partition())
    assert len(partitions) > 1   # the partitioner ran: not everything went to one partition


def test_positional_produce_reports_failures_to_the_clients_on_delivery():
    failed = []
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 200,
                         "log_level": 0, "on_delivery": lambda err, msg: failed.append(err)})
    producer.produce("nowhere", b"v", b"k", ANY_PARTITION, None, None, 0, [("h", b"x")])
    producer.flush(5)
    assert len(failed) == 1 and failed[0] is not None
