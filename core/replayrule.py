"""Where a restored partition's input replay starts, and when its card state cannot be rebuilt
exactly: the rules alone, without Kafka (core.cardstate applies them).

The changelog of partition p holds the state at its last marker S; the group has committed
input offset X. S == X: nothing to replay. S < X: replay [S, X), unless retention deleted input
since S. S > X (offsets moved back, or another group's snapshot), or a snapshot with no
committed offset: the state already holds input that will be scored again, which would count
it twice. No marker: either an older changelog (the state at X itself) or none at all.

The changelog is kept per input partition, and a producer puts a card in partition
hash(card) % partitions: once partitions are added to the input, most cards' next transactions
land in another partition than their history (partition_count_rule), so that history no
longer describes them; a changelog partitioned unlike the input is refused outright
(changelog_shape_rule).

Where the state cannot be exact, offset_reset decides: "refuse" (the default) is a StateError
(the loop holds the partition: core.stateholds); "earliest" / "latest" means the operator has
already chosen to lose or repeat input, so it goes on, logging what it did.
"""

from __future__ import annotations

import logging
from typing import Callable, NamedTuple

from core.errors import StateError

__all__ = ["ReplayPlan", "replay_plan", "changelog_shape_rule", "partition_count_rule"]


class ReplayPlan(NamedTuple):
    start: int                  # the first input offset to replay; == committed: none
    level: int = logging.INFO   # of `note`
    note: str = ""              # what to log, if anything


def replay_plan(*, src: str, p: int, state_topic: str, snapshot: int | None, committed: int, cards: int,
                offset_reset: str, low: Callable[[], int], exactly_once: bool = True) -> ReplayPlan:
    """The replay of `src`[p] from the marker's input offset `snapshot` (None: no marker) to the
    group's `committed` offset (< 0: none), `cards` restored. `low()`: the partition's first
    offset now (asked only when needed). Raises StateError under offset_reset refuse when the
    state cannot be rebuilt exactly. Not `exactly_once` (the tests-only at-least-once mode, whose
    offsets are committed seconds after the snapshots): never exact, so never refused."""
    refuse = offset_reset == "refuse" and exactly_once
    if not exactly_once:
        offset_reset = f"{offset_reset}, at-least-once"
    if snapshot is None:
        if committed > 0 and cards == 0:
            return ReplayPlan(committed, logging.WARNING,
                              f"{src}[{p}] has committed offset {committed} but no card-state snapshot in "
                              f"{state_topic} (state just turned on, or the topic recreated): its cards start "
                              f"empty, so velocity features see only what comes next")
        return ReplayPlan(committed)
    if committed < snapshot:   # also: no committed offset (< 0)
        where = (f"{state_topic}[{p}] holds a card-state snapshot at input offset {snapshot}, but the group's "
                 f"committed offset of {src}[{p}] is {committed if committed >= 0 else 'missing'} (offsets "
                 f"moved back, or another group's state)")
        if refuse:
            raise StateError(f"{where}: scoring from it would count the records in between twice; commit "
                             f"offsets >= {snapshot}, or set offset_reset: earliest | latest to score from the "
                             f"snapshot's state anyway")
        return ReplayPlan(committed, logging.WARNING,
                          f"{where}: scoring from the snapshot's state (offset_reset {offset_reset})")
    if committed == snapshot:
        return ReplayPlan(committed)
    first = low()
    if first <= snapshot:
        return ReplayPlan(snapshot)
    lost = f"{src}[{p}] {snapshot}..{min(first, committed) - 1}, scored after the card-state snapshot, is gone"
    if refuse:
        raise StateError(f"{lost} (retention or deleted records): the per-card state cannot be rebuilt exactly; "
                         f"set offset_reset: earliest | latest to score on from the snapshot's state")
    return ReplayPlan(min(first, committed), logging.ERROR,
                      f"{lost} (retention or deleted records): scoring on from the snapshot's state plus what "
                      f"is left (offset_reset {offset_reset})")


def _anew(state_topic: str, partitions: int) -> str:
    return (f"to start the card state anew (every card without history), delete {state_topic} and create it "
            f"with {partitions} partitions and cleanup.policy=compact")


def changelog_shape_rule(*, src: str, state_topic: str, partitions: int, state_partitions: int) -> None:
    """StateError when `state_topic` (`state_partitions`) is partitioned unlike `src`
    (`partitions`), whatever offset_reset says: the snapshots of some partitions would have
    nowhere to go. Checked once per assignment, before any partition's marker."""
    if state_partitions != partitions:
        raise StateError(f"{state_topic} has {state_partitions} partitions and {src} {partitions} (partitions added "
                         f"while the service ran?): the card state is kept per input partition, and a card's "
                         f"transactions now go to another partition than its history; "
                         f"{_anew(state_topic, partitions)}")


def partition_count_rule(*, src: str, p: int, state_topic: str, partitions: int, snapshot_partitions: int,
                         offset_reset: str, exactly_once: bool = True) -> str:
    """Whether partition p's card state may be restored now that `src` has `partitions`
    partitions, p's last marker having been written when `src` had `snapshot_partitions` (0: no
    marker, or one written before markers recorded it). Returns "" or an error to log and go on
    with (offset_reset earliest | latest); raises StateError under offset_reset refuse."""
    if snapshot_partitions in (0, partitions):
        return ""
    moved = (f"{src} has {partitions} partitions, but the card state in {state_topic}[{p}] was built when it had "
             f"{snapshot_partitions}: most cards' transactions now go to another partition than their history, so "
             f"their velocity features would be wrong")
    if offset_reset == "refuse" and exactly_once:
        raise StateError(f"{moved}; {_anew(state_topic, partitions)}, or set offset_reset: earliest | latest to "
                         f"score on from this state")
    return f"{moved}: scoring on from this state (offset_reset {offset_reset})"
