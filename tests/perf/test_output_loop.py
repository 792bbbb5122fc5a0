"""The output step of a batch: produce_outputs (scored events, alerts, dead letters) and the
offsets to commit, per event. The size rule must cost nothing on the default path (librdkafka's
own check in produce()); `checked` is the path taken only when an output topic's
max.message.bytes is below the producer's limit (every record measured in Python).

    .venv/bin/pytest tests/perf/test_output_loop.py --benchmark-only -p no:cacheprovider
"""

import pytest
from confluent_kafka import Message, Producer

from core.limits import OutputLimits, limits_from
from core.offsets import next_offsets
from core.routing import produce_outputs
from core.topics import TopicNames
from tests.perf.perevent import EVENTS, per_event

NAMES = TopicNames()


@pytest.fixture(scope="module")
def batch(scorer, payloads):
    msgs = [Message(topic="transactions", partition=0, offset=1000 + i, key=b"%016x" % i, value=v,
                    headers=[("bench.sent_ns", b"1796506890341000000")]) for i, v in enumerate(payloads[:EVENTS])]
    return msgs, scorer.score_batch([m.value() for m in msgs])


@pytest.fixture
def producer():
    # A real client with no broker: produce() runs librdkafka's checks and queues.
    p = Producer({"bootstrap.servers": "127.0.0.1:1", "log_level": 0, "queue.buffering.max.messages": 2_000_000,
                  "queue.buffering.max.kbytes": 4_000_000, "delivery.report.only.error": True})
    yield p
    p.purge()


@pytest.mark.parametrize("path", ["default", "checked"])
def test_produce_outputs(benchmark, batch, producer, path):
    msgs, result = batch
    limits = OutputLimits.uniform(NAMES) if path == "default" else limits_from(
        1_000_000, 1_000_000, {NAMES.scores: 900_000, NAMES.alerts: 1_048_588, NAMES.deadletter: 1_048_588})
    assert limits.checked_here(NAMES.scores) == (path == "checked")

    def run():
        assert not produce_outputs(producer, NAMES, msgs, result, limits)

    # purging the queued records is librdkafka's cost of this harness, not of the loop: untimed
    benchmark.pedantic(run, setup=producer.purge, rounds=15, warmup_rounds=2)
    per_event(benchmark, len(msgs))


def test_next_offsets(benchmark, batch):
    msgs, _ = batch
    # one process per partition: the scan stops at the batch's last record (~1 µs a batch)
    benchmark.pedantic(lambda: next_offsets("transactions", msgs, {0}), rounds=15, warmup_rounds=2, iterations=100)
    per_event(benchmark, len(msgs))
