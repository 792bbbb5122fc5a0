"""Fault injection for tests: make a random transaction fail as Kafka would make it fail.

TEST ONLY. With FRAUDSTREAM_FAULTS set, e.g. ``FRAUDSTREAM_FAULTS="produce:0.01,commit:0.02"``,
each scoring process fails that share of its transactions at that point with an error
librdkafka flags txn_requires_abort, so the loop's abort -> rewind to the committed offsets ->
retry path runs (tests/kafka/test_exactly_once.py proves it still delivers exactly once).
Points: ``produce`` (after the batch's outputs went into the open transaction) and ``commit``
(after its offsets did, in place of commit_transaction). And one that fails nothing: ``stall``
holds that share of transactions open for STALL_S after their outputs were produced, as a slow
broker would, so that a kill -9 test's random kills land inside open transactions with records
already on the broker (without it, a worker spends most of its time between transactions);
``stall_acked`` does the same once the broker has acknowledged every output record (just
before the input offsets are sent), so a process frozen there holds a transaction that only
Kafka's transaction timeout can end.
And ``hang``: that share of transactions never returns from a call inside commit_transaction,
as librdkafka sometimes does (core.txnwatch), and the watch then gives up after HANG_WATCH_S.

Read once when a ScoringConsumer is made; unset (the default) it is None and the loop's only
cost is one `is not None` per batch. A bad value is a ConfigError naming the variable.
"""

from __future__ import annotations

import logging
import os
import random
import time

from confluent_kafka import KafkaError, KafkaException

from core.errors import ConfigError

__all__ = ["ENV", "POINTS", "Faults", "faults_from_env"]

log = logging.getLogger(__name__)

ENV = "FRAUDSTREAM_FAULTS"
POINTS = ("produce", "commit", "stall", "stall_acked", "hang")
STALL_S = 0.05
HANG_WATCH_S = 3.0   # core.txnwatch's patience with `hang` injected (txnwatch.STUCK_S otherwise)


class Faults:
    """Per injection point, the probability that a transaction fails there."""

    def __init__(self, rates: dict[str, float], rng: random.Random | None = None):
        self.rates = rates
        self.injected = dict.fromkeys(rates, 0)
        self._random = (rng or random.Random()).random

    def hit(self, point: str) -> None:
        """Raise an abortable KafkaException at `point` with its probability (or, at
        ``stall`` and ``stall_acked``, wait STALL_S; at ``hang``, for ever)."""
        rate = self.rates.get(point)
        if rate and self._random() < rate:
            self.injected[point] += 1
            if point in ("stall", "stall_acked"):
                time.sleep(STALL_S)
                return
            if point == "hang":
                while True:
                    time.sleep(3600)
            raise KafkaException(KafkaError(KafkaError._STATE, f"{ENV}: injected {point} fault",
                                            txn_requires_abort=True))


def faults_from_env(environ=os.environ) -> Faults | None:
    """The faults FRAUDSTREAM_FAULTS asks for, or None when it is unset or empty."""
    text = environ.get(ENV, "").strip()
    if not text:
        return None
    rates = {}
    for item in text.split(","):
        point, _, value = item.strip().partition(":")
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if point not in POINTS or not 0.0 <= rate <= 1.0:
            raise ConfigError(f"{ENV}={text!r}: expected point:probability pairs, points "
                              f"{', '.join(POINTS)}, probabilities 0-1 (e.g. produce:0.01,commit:0.02)")
        rates[point] = rate
    log.warning("%s=%s: injecting transaction faults (test only)", ENV, text)
    return Faults(rates)
