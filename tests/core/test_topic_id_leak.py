"""core.topicidleak.release gives back the one reference confluent-kafka's describe_topics
leaks to each topic id, and touches nothing else (the leak simulated with Py_IncRef)."""

import ctypes
import sys

from confluent_kafka import Uuid
from confluent_kafka.admin import TopicDescription

from core import topicidleak


def _described(topic_id) -> TopicDescription:
    return TopicDescription("t.transactions", topic_id, False, [])


def _leaked() -> TopicDescription:
    description = _described(Uuid(7, 11))
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(description.topic_id))   # what Admin.c does
    return description


def _refs(description: TopicDescription) -> int:
    # counted here, not inside an assert (pytest's rewritten asserts hold values of their own)
    return sys.getrefcount(description.topic_id)


def test_the_leaked_reference_is_released_once():
    clean, leaked = _described(Uuid(7, 11)), _leaked()
    assert _refs(leaked) == _refs(clean) + 1
    assert topicidleak.release(leaked)
    assert _refs(leaked) == _refs(clean)
    assert not topicidleak.release(leaked)   # again: nothing
    assert _refs(leaked) == _refs(clean)
    assert str(leaked.topic_id) == str(clean.topic_id)


def test_an_id_without_the_leak_is_left_alone():
    clean = _described(Uuid(7, 11))
    before = _refs(clean)
    assert not topicidleak.release(clean)
    assert _refs(clean) == before


def test_an_id_held_elsewhere_too_is_left_alone():
    leaked = _leaked()
    also = [leaked.topic_id, leaked.topic_id]   # two more references: not the leak's signature
    before = _refs(leaked)
    assert not topicidleak.release(leaked)
    assert _refs(leaked) == before
    assert len(also) == 2


def test_no_id_is_left_alone():
    assert not topicidleak.release(_described(None))
