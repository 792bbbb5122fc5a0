"""Where a restored partition's input replay starts, and when its card state cannot be rebuilt
exactly: the rules alone, without Kafka (core.cardstate applies them).

The changelog of partition p holds the state at its last marker S; the group has committed
input offset X. S == X: nothing to replay. S < X: replay [S, X), unless retention deleted input
since S. S > X (offsets moved back, or another group's snapshot), or a snapshot with no
committed offset: the state already holds input that will be scored again, which would count
it twice. No marker: either an older changelog (the state at X itself) or none at all.

Where the state cannot be exact, offset_reset decides: "refuse" (the default) is a StateError
(the loop holds the partition: core.stateholds); "earliest" / "latest" means the operator has
already chosen to lose or repeat input, so it goes on, logging what it did.
"""

from __future__ import annotations

import logging
from typing import Callable, NamedTuple

from core.errors import StateError

__all__ = ["ReplayPlan", "replay_plan"]


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
