"""The topic guard asks for the topic ids before every commit: on a real broker, asking
thousands of times must not leave a topic id behind per answer (confluent-kafka's
describe_topics leaks one per topic without core.topicidleak: ~5 per transaction)."""

from __future__ import annotations

import gc

import pytest
from confluent_kafka import Uuid

from core.topicids import TopicGuard

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

ASKS = 1_000


def _topic_ids_alive() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is Uuid)


def test_asking_for_the_topic_ids_keeps_none_of_them(kafka_bootstrap, fresh_topics):
    names = fresh_topics("guardmem")
    guard = TopicGuard({"bootstrap.servers": kafka_bootstrap}, names.every())
    guard.learn()
    assert len(guard.learned) == len(names.every())
    for _ in range(20):   # the client's own start-up objects
        assert guard.ask()() == []
    before = _topic_ids_alive()
    for _ in range(ASKS):
        assert guard.ask()() == []
    kept = _topic_ids_alive() - before
    assert kept < len(names.every()), f"{kept} topic ids kept after {ASKS} answers"
