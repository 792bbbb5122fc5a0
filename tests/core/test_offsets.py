"""The offsets a transaction commits come from what it processed, and the start policy for a
partition without a usable committed offset."""

from confluent_kafka import Message
from hypothesis import given, settings, strategies as st

from core.offsets import decide_start, next_offsets


def _batch(runs):
    """Messages as consume() returns them: runs of consecutive offsets per partition, runs of
    different partitions interleaved, each partition's offsets ascending across its runs."""
    at: dict[int, int] = {}
    out = []
    for partition, start_gap, length in runs:
        first = at.get(partition, 1000 * partition) + start_gap
        out += [Message(topic="tx", partition=partition, offset=first + k) for k in range(length)]
        at[partition] = first + length
    return out


runs = st.lists(st.tuples(st.integers(0, 7), st.integers(0, 3), st.integers(1, 20)), min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(runs=runs, extra=st.sets(st.integers(0, 9), max_size=4))
def test_every_partition_with_records_commits_its_last_offset_plus_one(runs, extra):
    msgs = _batch(runs)
    present = {m.partition() for m in msgs}
    for assigned in (set(), present, present | extra):   # unknown / exact / more than the batch holds
        got = {tp.partition: tp.offset for tp in next_offsets("tx", msgs, assigned)}
        assert set(got) == present
        for p in present:
            assert got[p] == max(m.offset() for m in msgs if m.partition() == p) + 1
        assert all(tp.topic == "tx" for tp in next_offsets("tx", msgs, assigned))


def test_a_partition_not_in_the_batch_gets_no_offset_and_nothing_moves_past_the_batch():
    # position() of the whole assignment would also have committed partitions 2 and 5
    msgs = _batch([(0, 0, 3), (1, 0, 2), (0, 0, 1)])
    assert sorted((tp.partition, tp.offset) for tp in next_offsets("tx", msgs, {0, 1, 2, 5})) == [(0, 4), (1, 1002)]


def test_start_policy():
    # new group, nothing written yet: start at the beginning
    assert decide_start([0, 1], {0: -1001, 1: -1001, 2: -1001}, outputs_written=False) == ([0, 1], [])
    # the group has offsets elsewhere (a new or never-used partition): start at the beginning
    assert decide_start([0, 2], {0: 50, 1: 7, 2: -1001}, outputs_written=True) == ([2], [])
    # no offsets anywhere but outputs exist: expired or deleted offsets, refuse
    assert decide_start([0, 1], {0: -1001, 1: -1001, 2: -1001}, outputs_written=True) == ([], [0, 1])
    # every assigned partition committed: nothing to decide (out of range is librdkafka's event)
    assert decide_start([0], {0: 12, 1: -1001}, outputs_written=True) == ([], [])
