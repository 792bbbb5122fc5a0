"""Inputs whose outputs the broker refuses for good, found from delivery reports.

Inside a transaction librdkafka makes every failed record abortable, also when the failure
is a property of the record itself (too large for a limit changed since start-up, a null key
on a compacted output, a timestamp the topic refuses): retrying the same batch would fail
the same way until the abort limit stops the worker. The broker rejects a whole record
*batch*, so every record of it reports the error, innocent ones included.

The policy, bounded and exactly-once-safe (an aborted transaction leaves nothing behind):

1. After an abort, the delivery reports of that transaction are looked at. If every failure
   has a per-record permanent code (PERMANENT) and maps back to an input of the batch (by the
   exact bytes produced), those inputs are *suspects*; otherwise the abort is an ordinary one.
2. One suspect is the culprit: it is *quarantined* - on its next consumption it becomes a
   dead letter (`produce_failed: <topic>: <code>`) instead of being scored.
3. Several suspects (one rejected batch): the next time the loop meets them it commits the
   batch in pieces, each suspect in a transaction of its own; a suspect that fails alone is
   the culprit (quarantined, as in 2), the others are committed normally.

Every abort either quarantines a new culprit or counts towards the loop's limit of aborts in a
row, so this ends. Quarantine and suspects are keyed by source coordinates, which a retry sees
again whatever its batch boundaries, and are forgotten once committed. A process restart forgets
them: its first attempt finds them again.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from confluent_kafka import KafkaError

from core.limits import wire_size

__all__ = ["Culprits", "PERMANENT"]

log = logging.getLogger(__name__)

PERMANENT = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_RECORD,
    KafkaError.INVALID_MSG,          # CORRUPT_MESSAGE: the record fails its CRC or format check
    KafkaError.INVALID_TIMESTAMP,
})

# Records the abort itself purged from the queue: a consequence, not a cause.
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})

Coord = tuple[int, int]


class Culprits:
    """Failed delivery reports of the open transaction, suspects and quarantined inputs."""

    def __init__(self) -> None:
        self.failed: list[tuple[KafkaError, str, bytes | None]] = []
        self.quarantine: dict[Coord, str] = {}
        self.suspects: set[Coord] = set()

    def on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        """The producer's on_delivery (with delivery.report.only.error: failures only)."""
        if err is not None:
            self.failed.append((err, msg.topic(), msg.value()))

    def begin(self) -> None:
        self.failed.clear()

    def active(self) -> bool:
        return bool(self.quarantine or self.suspects)

    def divert(self, msgs: Sequence[Any]) -> dict[int, str]:
        """Index -> reason of the quarantined inputs in `msgs`."""
        q = self.quarantine
        if not q:
            return {}
        return {i: q[(m.partition(), m.offset())] for i, m in enumerate(msgs) if (m.partition(), m.offset()) in q}

    def pieces(self, msgs: Sequence[Any]) -> list[Sequence[Any]]:
        """`msgs` cut so that every suspect is alone in its piece (order kept)."""
        out, start = [], 0
        for i, m in enumerate(msgs):
            if (m.partition(), m.offset()) in self.suspects:
                if i > start:
                    out.append(msgs[start:i])
                out.append(msgs[i:i + 1])
                start = i + 1
        if start < len(msgs):
            out.append(msgs[start:])
        return out

    def has_suspects(self, msgs: Sequence[Any]) -> bool:
        s = self.suspects
        return bool(s) and any((m.partition(), m.offset()) in s for m in msgs)

    def committed(self, msgs: Sequence[Any]) -> None:
        """Forget what this committed batch settled."""
        if self.quarantine or self.suspects:
            for m in msgs:
                coord = (m.partition(), m.offset())
                self.quarantine.pop(coord, None)
                self.suspects.discard(coord)

    def after_abort(self, topics: Any, msgs: Sequence[Any], result: Any) -> tuple[str | None, bool]:
        """Judge the failed deliveries of the aborted transaction over `msgs` (scored into
        `result`): (what was concluded, for the log, or None for an ordinary abort; whether a
        new culprit was quarantined - progress, which the abort limit does not count)."""
        failed, self.failed = [f for f in self.failed if f[0].code() not in _PURGED], []
        if not failed or any(err.code() not in PERMANENT for err, _, _ in failed):
            return None, False
        by_value = {topics.scores: {v: i for i, v in result.scored}, topics.alerts: {v: i for i, v in result.alerts}}
        found: dict[int, tuple[str, KafkaError, bytes]] = {}
        for err, topic, value in failed:
            idx = by_value.get(topic, {}).get(value)
            if idx is None:
                return None, False   # e.g. a dead letter: nothing to divert it to
            found.setdefault(idx, (topic, err, value))
        coords = {idx: (msgs[idx].partition(), msgs[idx].offset()) for idx in found}
        if len(found) == 1:
            (idx, (topic, err, value)), = found.items()
            msg = msgs[idx]
            self.quarantine[coords[idx]] = _reason(topic, err, msg, value)
            self.suspects.discard(coords[idx])
            return (f"{msg.topic()}[{msg.partition()}]@{msg.offset()} refused for good, it becomes a dead letter: "
                    f"{self.quarantine[coords[idx]]}", True)
        self.suspects.update(coords.values())
        return f"{len(found)} records of a rejected batch ({failed[0][0].name()}): retrying each alone", False


def _reason(topic: str, err: KafkaError, msg: Any, value: bytes) -> str:
    if err.code() in (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE):
        size = wire_size(msg.key(), value, msg.headers())
        return f"output_too_large: {topic} {size:,} bytes refused by the broker ({err.name()})"
    return f"produce_failed: {topic}: {err.name()}"
