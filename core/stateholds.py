"""Input partitions whose card state cannot be restored: paused in this worker, retried with
backoff, while its other partitions go on.

A StateError of partition p's restore (input deleted between the snapshot and the committed
offset under offset_reset refuse, an undecodable changelog record, a marker that does not
match, the committed offset unreadable for a minute) must neither score p from a wrong state
nor stop the worker: a stopped worker's partitions, p among them, would move to the next worker,
which stops in turn, until no partition of the service is scored. So p is held: its records of
the batch are dropped unscored (nothing of p is committed, so nothing is lost), the consumer
pauses p and seeks it back to the first of them, one `error` line says why and when the next
try is, and the gauge fraudstream_state_held_partitions counts it. The next try resumes p
(1 s, then doubling to 60 s): a transient cause passes, a lasting one logs again, and the
operator's fix (offset_reset earliest or latest, a repaired changelog) takes effect on the
next try after a restart with it. A partition revoked or lost is forgotten with its hold.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import TopicPartition

from core.errors import StateError

__all__ = ["StateHolds"]

log = logging.getLogger(__name__)

FIRST_RETRY_S = 1.0
MAX_RETRY_S = 60.0
_TRYING = float("inf")   # the next try of a resumed partition: none until it fails again


class StateHolds:
    """The held partitions of one worker's input topic."""

    def __init__(self, name: str, topic: str):
        self.name = name
        self.topic = topic
        # p -> (next try at, delay, offset); next try at inf: resumed, being tried now
        self._held: dict[int, tuple[float, float, int]] = {}
        _held_gauge()   # on /metrics at 0 from the start: an alert on it needs the series

    def __bool__(self) -> bool:
        return bool(self._held)

    def admit(self, cards: Any, consumer: Any, msgs: list[Any]) -> list[Any]:
        """msgs without the records of held partitions: restores the partitions of msgs that
        have no state yet (`cards`: core.cardstate.CardStates), one by one, and holds each
        that fails, so one partition's state never stops the others."""
        if self._held:   # records of paused partitions fetched before the pause took effect
            paused = {p for p, (at, _, _) in self._held.items() if at != _TRYING}
            msgs = [m for m in msgs if m.partition() not in paused]
        missing = cards.missing(msgs)
        if not missing:
            return msgs
        failed = set()
        for p in missing:
            try:
                cards.restore(consumer, [p])
            except StateError as exc:
                self.hold(consumer, p, next(m.offset() for m in msgs if m.partition() == p), exc)
                failed.add(p)
            else:
                self.restored(p)
        return [m for m in msgs if m.partition() not in failed] if failed else msgs

    def hold(self, consumer: Any, p: int, offset: int, error: Exception) -> None:
        """Pause p at `offset` (its first record not scored) after its restore failed."""
        _, last, _ = self._held.get(p, (0.0, 0.0, offset))
        delay = FIRST_RETRY_S if last == 0.0 else min(2.0 * last, MAX_RETRY_S)
        tp = TopicPartition(self.topic, p, offset)
        consumer.pause([tp])
        self._held[p] = (time.monotonic() + delay, delay, offset)
        log.error("%s: %s[%d] held (paused, its other partitions go on; next try in %.0f s): %s",
                  self.name, self.topic, p, delay, error)
        self._publish()

    def resume_due(self, consumer: Any) -> None:
        """Resume the held partitions whose next try is due, from their first unscored record."""
        if not self._held:
            return
        now = time.monotonic()
        for p, (at, delay, offset) in list(self._held.items()):
            if at > now:   # not due, or being tried now
                continue
            tp = TopicPartition(self.topic, p, offset)
            consumer.resume([tp])
            consumer.seek(tp)
            # keep the delay: a failure on this try doubles it; a success clears it (restored)
            self._held[p] = (_TRYING, delay, offset)
            log.info("%s: %s[%d] resumed at %d: trying its card state again", self.name, self.topic, p, offset)

    def restored(self, p: int) -> None:
        """p's restore succeeded: its hold (if any) is over."""
        if self._held.pop(p, None) is not None:
            log.info("%s: %s[%d] restored after being held", self.name, self.topic, p)
            self._publish()

    def forget(self, partitions) -> None:
        """Revoked or lost partitions: no longer ours to hold."""
        changed = False
        for p in partitions:
            changed |= self._held.pop(p, None) is not None
        if changed:
            self._publish()

    def _publish(self) -> None:
        _held_gauge().set(len(self._held))


_gauge = None


def _held_gauge():
    """The gauge, made once per process (one registry, however many loops it runs)."""
    global _gauge
    if _gauge is None:
        from prometheus_client import Gauge

        _gauge = Gauge("fraudstream_state_held_partitions",
                       "Input partitions paused because their card state cannot be restored",
                       multiprocess_mode="livesum")
    return _gauge
