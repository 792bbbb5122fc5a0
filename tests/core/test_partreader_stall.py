"""core.partreader's librdkafka path gives up on a partition that yields nothing (no record, no
end of partition) for STALL_S: a StateError, so the partition is held and retried instead of the
restore blocking its worker silently. A stand-in consumer that never answers: the loop's own
deadline is what is tested, not Kafka."""

import pytest

from core import partreader
from core.errors import StateError


class Silent:
    def __init__(self):
        self.calls = 0

    def assign(self, partitions):
        pass

    def unassign(self):
        pass

    def consume(self, num_messages, timeout):
        self.calls += 1
        return []


def test_a_silent_partition_is_a_state_error_naming_where(monkeypatch):
    monkeypatch.setattr(partreader, "STALL_S", 0.2)
    consumer = Silent()
    with pytest.raises(StateError, match=r"restore: nothing read from st\[4\] for 0 s at offset 7 of 90"):
        list(partreader._consume(consumer, "st", 4, 7, 90, "restore", 1000))
    assert consumer.calls > 1   # it did wait, polling
