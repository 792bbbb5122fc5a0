"""What a restore checks besides the replay (core.cardstate): that the input and the card-state
changelog are still partitioned as when the partition's last snapshot was written, and which
model wrote it.

A producer puts a card in partition hash(card) % partitions, so partitions added to the input
while the service runs send most cards to another partition than their history: scored from
that state, their velocity features would be silently wrong (core.replayrule's
partition_count_rule: the partition is held). A snapshot written by a worker scoring with
another model is only logged: a rolling upgrade scores with two models for a while, but a
service started with the wrong --model does so for ever.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaException

from core.config import ScoringConfig
from core.errors import StateError
from core.replayrule import changelog_shape_rule, partition_count_rule
from core.snapshot import Marker

__all__ = ["partition_counts", "check_marker"]

log = logging.getLogger(__name__)


def partition_counts(reader: Any, config: ScoringConfig, name: str) -> tuple[int, int]:
    """The partition counts of the input and of the changelog now, from a metadata request (so
    partitions added while the service runs are seen at once, not at the next refresh).
    StateError when they cannot be read or differ."""
    topics, counts = config.topics, []
    for topic in (topics.transactions, topics.state):
        try:
            meta = reader.list_topics(topic, timeout=30.0).topics.get(topic)
        except KafkaException as exc:
            raise StateError(f"{name}: cannot read the partitions of {topic}: {exc.args[0]}") from exc
        counts.append(len(meta.partitions) if meta is not None and meta.error is None else 0)
    try:
        changelog_shape_rule(src=topics.transactions, state_topic=topics.state, partitions=counts[0],
                             state_partitions=counts[1])
    except StateError as exc:
        raise StateError(f"{name}: {exc}") from None
    return counts[0], counts[1]


def check_marker(config: ScoringConfig, name: str, p: int, marker: Marker | None, partitions: int,
                 model: str) -> None:
    """p's last marker (None: none) against the input's partition count now (StateError, or an
    error line under offset_reset earliest | latest) and against the `model` scoring now (a
    warning)."""
    try:
        note = partition_count_rule(src=config.topics.transactions, p=p, state_topic=config.topics.state,
                                    partitions=partitions, snapshot_partitions=marker.partitions if marker else 0,
                                    offset_reset=config.offset_reset, exactly_once=config.exactly_once)
    except StateError as exc:
        raise StateError(f"{name}: {exc}") from None
    if note:
        log.error("%s: %s", name, note)
    if marker is not None and marker.model and model and marker.model != model:
        log.warning("%s: %s[%d] was last snapshotted by a worker scoring with model %s, this one scores with %s: "
                    "two models score group %s (a rolling upgrade; otherwise check each service's --model)",
                    name, config.topics.state, p, marker.model, model, config.group_id)
