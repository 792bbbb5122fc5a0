"""Give back the reference confluent-kafka's describe_topics keeps to every topic id.

In confluent-kafka 2.x (2.16.2 and its source of 2026-06 included) Admin.c builds each
TopicDescription with `PyDict_SetItemString(kwargs, "topic_id", c_Uuid_to_py(...))`: the dict
takes a reference of its own to the new Uuid and the one c_Uuid_to_py returned is never
released, so every topic id ever described stays in memory (a Python Uuid and the librdkafka
Uuid it owns). core.topicids asks for the ids of five topics before every commit: a worker
grew ~0.6 KB per Kafka transaction, ~25 MB over 80,000 records in two-record transactions in
test_chaos_overload; at 200 Kafka transactions a second (5 ms batches), ~10 GB a day.

`release(description)` drops that one reference, and only when the id holds exactly one more
than the id of a TopicDescription built here in Python holds, both counted the same way, so
the interpreter's own counting cancels out: on a release of confluent-kafka that fixes the
leak, or for a None id, it does nothing; called again on the same description, nothing.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from confluent_kafka import Uuid
from confluent_kafka.admin import TopicDescription

__all__ = ["release"]

# A description built in Python: its topic id is held by the description alone, the count
# every described id would show without the leak.
_CONTROL = TopicDescription("control", Uuid(0, 1), False, [])


def release(description: Any) -> bool:
    """Drop the reference describe_topics leaked to description.topic_id; True if it did."""
    if not isinstance(description.topic_id, Uuid):
        return False
    if sys.getrefcount(description.topic_id) - sys.getrefcount(_CONTROL.topic_id) != 1:
        return False
    ctypes.pythonapi.Py_DecRef(ctypes.py_object(description.topic_id))
    return True
