"""core.replayrule: where a restore's input replay starts, and when the state cannot be exact."""

import logging

import pytest

from core.errors import StateError
from core.replayrule import changelog_shape_rule, partition_count_rule, replay_plan

ARGS = dict(src="tx", p=2, state_topic="st", cards=10, offset_reset="refuse")


def never() -> int:
    raise AssertionError("the partition's start was asked for without need")


def test_the_snapshot_at_the_committed_offset_or_behind_it_with_the_input_there():
    assert replay_plan(snapshot=50, committed=50, low=never, **ARGS) == (50, logging.INFO, "")
    assert replay_plan(snapshot=50, committed=80, low=lambda: 0, **ARGS).start == 50
    assert replay_plan(snapshot=50, committed=80, low=lambda: 50, **ARGS).start == 50


def test_input_deleted_since_the_snapshot():
    with pytest.raises(StateError, match=r"tx\[2\] 50\.\.59, scored after the card-state snapshot, is gone"):
        replay_plan(snapshot=50, committed=80, low=lambda: 60, **ARGS)
    plan = replay_plan(snapshot=50, committed=80, low=lambda: 60, **{**ARGS, "offset_reset": "earliest"})
    assert plan.start == 60 and plan.level == logging.ERROR and "(offset_reset earliest)" in plan.note
    # deleted past the committed offset too: nothing left to replay
    assert replay_plan(snapshot=50, committed=80, low=lambda: 95, **{**ARGS, "offset_reset": "latest"}).start == 80


@pytest.mark.parametrize("committed, shown", [(40, "40"), (-1001, "missing")])
def test_a_snapshot_ahead_of_the_committed_offset_would_count_twice(committed, shown):
    with pytest.raises(StateError) as err:
        replay_plan(snapshot=50, committed=committed, low=never, **ARGS)
    assert (f"st[2] holds a card-state snapshot at input offset 50, but the group's committed offset of tx[2] "
            f"is {shown}" in str(err.value)) and "count the records in between twice" in str(err.value)
    plan = replay_plan(snapshot=50, committed=committed, low=never, **{**ARGS, "offset_reset": "earliest"})
    assert plan.start == committed and plan.level == logging.WARNING and "snapshot's state" in plan.note


def test_no_snapshot():
    assert replay_plan(snapshot=None, committed=-1001, low=never, **{**ARGS, "cards": 0}) == (-1001, logging.INFO, "")
    assert replay_plan(snapshot=None, committed=70, low=never, **ARGS) == (70, logging.INFO, "")   # older changelog
    cold = replay_plan(snapshot=None, committed=70, low=never, **{**ARGS, "cards": 0})
    assert cold.start == 70 and cold.level == logging.WARNING and "start empty" in cold.note


def test_at_least_once_is_never_exact_so_never_held():
    # its offsets are committed seconds after the snapshot that already holds their records
    plan = replay_plan(snapshot=50, committed=40, low=never, exactly_once=False, **ARGS)
    assert plan.start == 40 and plan.level == logging.WARNING and "(offset_reset refuse, at-least-once)" in plan.note
    assert replay_plan(snapshot=50, committed=80, low=lambda: 60, exactly_once=False, **ARGS).start == 60


COUNT = dict(src="tx", p=2, state_topic="st", offset_reset="refuse")


def test_partitions_added_to_the_input_hold_a_partition_whose_state_was_built_on_fewer():
    """Partitions added while the service ran move most cards to another partition than their
    history: restoring p from a snapshot written at 6 partitions when there are 8 is refused
    (it was scored on before), naming both counts and how to start anew."""
    with pytest.raises(StateError) as err:
        partition_count_rule(partitions=8, snapshot_partitions=6, **COUNT)
    text = str(err.value)
    assert "tx has 8 partitions, but the card state in st[2] was built when it had 6" in text
    assert "delete st and create it with 8 partitions and cleanup.policy=compact" in text
    assert "offset_reset: earliest | latest" in text
    note = partition_count_rule(partitions=8, snapshot_partitions=6,
                                **{**COUNT, "offset_reset": "latest"})
    assert "built when it had 6" in note and "(offset_reset latest)" in note
    # the same count, or a marker that does not record it (written before it was recorded), or none
    for snapshot in (8, 0):
        assert partition_count_rule(partitions=8, snapshot_partitions=snapshot, **COUNT) == ""


def test_a_changelog_partitioned_unlike_the_input_is_refused():
    """Whatever offset_reset says (the rule does not take it): some snapshots would have nowhere to go."""
    with pytest.raises(StateError, match=r"st has 6 partitions and tx 8 \(partitions added while the service "
                                         r"ran\?\).*create it with 8 partitions"):
        changelog_shape_rule(src="tx", state_topic="st", partitions=8, state_partitions=6)
    changelog_shape_rule(src="tx", state_topic="st", partitions=8, state_partitions=8)
