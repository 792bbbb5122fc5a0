"""Whether a scoring loop reaches Kafka: one warning when its last broker connection goes, one
line when a broker answers again, and a gauge that the stats line and /healthz read.

librdkafka retries for ever on its own; it tells the application through the error callback
(_ALL_BROKERS_DOWN when no broker connection is left, _TRANSPORT and the like for each failed
one) and says nothing when a broker answers again. So a loop that lost its brokers asks for
the input topic's metadata every PROBE_S until an answer comes (or a commit succeeds): nothing
is asked while Kafka is reachable.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from confluent_kafka import KafkaError

__all__ = ["KafkaReach", "PROBE_S", "PROBE_TIMEOUT_S", "UNANSWERED_S", "RECENT_S"]

log = logging.getLogger(__name__)

PROBE_S = 1.0
# A call waiting this long counts as unanswered even without _ALL_BROKERS_DOWN; shorter waits
# only after it, since a leader or coordinator moving to another broker takes ~10 s.
UNANSWERED_S = 30.0
# A probe blocks the loop: short, so that stop() is still honoured at once while Kafka is away.
PROBE_TIMEOUT_S = 0.5
# A worker that Kafka calls fenced this soon after it was unreachable was dropped during the
# outage (core.txn.expiry): its consumer's session (30 s by default) ran out, or its
# transaction outlived transaction.timeout.ms, and the refusal comes once Kafka is back.
RECENT_S = 120.0


class KafkaReach:
    """Kafka reachability as one loop sees it. `on_error` is the clients' error_cb;
    `set_gauge(True|False)` publishes it (core.metrics.LoopMetrics.set_unreachable).

    _ALL_BROKERS_DOWN alone is not believed: a broker closes idle connections
    (connections.max.idle.ms), and an idle producer then has none. The loop probes at once,
    and Kafka counts as unreachable from then on only if the probe finds no broker either."""

    def __init__(self, name: str, set_gauge: Callable[[bool], None], clock: Callable[[], float] = time.monotonic):
        self.name = name
        self._set_gauge = set_gauge
        self._clock = clock
        self._suspect_at: float | None = None   # clock() when librdkafka said its last connection went
        self._down = False   # a probe confirmed it
        self._last_probe = 0.0
        self._cause = ""   # the last connection error librdkafka reported
        self._back_at: float | None = None   # clock() when it was last found reachable again

    @property
    def down(self) -> bool:
        return self._down

    def unreachable_lately(self, within_s: float = RECENT_S) -> bool:
        """Kafka is unreachable, or was until less than `within_s` ago."""
        return self._down or (self._back_at is not None and self._clock() - self._back_at <= within_s)

    def on_error(self, error: KafkaError) -> None:
        """error_cb of the loop's consumer and producer (called where they are polled)."""
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            if self._suspect_at is None:
                self._suspect_at = self._clock()
                self._last_probe = float("-inf")   # probe at the loop's next turn
        elif not error.fatal():   # a fatal error also ends the call that meets it: the loop reports that
            self._cause = error.str()

    def probe_due(self) -> bool:
        """True when the loop should probe: at once after _ALL_BROKERS_DOWN, then every PROBE_S
        until a broker answers."""
        if self._suspect_at is None:
            return False
        now = self._clock()
        if now - self._last_probe < PROBE_S:
            return False
        self._last_probe = now
        return True

    def probe(self, consumer: Any, topic: str) -> None:
        """Ask for `topic`'s metadata, which needs a broker: an answer means Kafka is reachable."""
        try:
            consumer.list_topics(topic, timeout=PROBE_TIMEOUT_S)
        except Exception:   # noqa: BLE001 - a KafkaException or a client error: no broker answered
            self.no_answer()
            return
        self.answered()

    def no_answer(self, what: str = "", waited_s: float = UNANSWERED_S) -> None:
        """A call that needs a broker has had no answer for `waited_s` (a probe, a flush, a
        transactional call): Kafka is unreachable if librdkafka said its connections went, or
        after UNANSWERED_S."""
        if self._suspect_at is None and waited_s < UNANSWERED_S:
            return
        if self._suspect_at is None:
            self._suspect_at = self._clock()
            self._last_probe = self._suspect_at
        if not self._down:
            self._down = True
            self._set_gauge(True)
            cause = f" (last error: {self._cause})" if self._cause else ""
            log.warning("%s: Kafka unreachable: %s%s; scoring waits, nothing is lost, and it resumes when a "
                        "broker answers", self.name, f"{what} got no answer" if what else "no broker answers", cause)

    def overdue(self, what: str, waited_s: float) -> None:
        """From core.txnwatch's thread: `what` has not returned past its own timeout, and the
        loop, blocked in it, can neither probe nor be told of _ALL_BROKERS_DOWN (its clients'
        callbacks wait for a poll). Counted as unreachable at once: /healthz must not say 200
        while the loop waits on Kafka. A broker answering clears it as usual (a probe, a commit).
        (Another thread, but the loop's own is inside the call: nothing else updates this now.)"""
        if self._suspect_at is None:
            self._suspect_at = self._clock()
            self._last_probe = float("-inf")   # probe once the loop is back
        self.no_answer(f"{what} (for {waited_s:.0f} s, past its own timeout)", UNANSWERED_S)

    def close(self) -> None:
        """The loop stops: it no longer counts as one that cannot reach Kafka."""
        if self._down:
            self._down = False
            self._set_gauge(False)
        self._suspect_at = None

    def flush_waits(self, what: str, waited_s: float) -> None:
        """Records of a flush wait unacknowledged: Kafka is unreachable only if librdkafka said its
        connections went (a transaction failed by the broker leaves its records waiting too)."""
        if self._suspect_at is not None and waited_s >= PROBE_S:
            self.no_answer(what, waited_s)

    def answered(self) -> None:
        """A broker answered (a probe, a commit): Kafka is reachable."""
        if self._down:
            self._back_at = self._clock()
            log.info("%s: Kafka reachable again after %.0f s", self.name, self._back_at - self._suspect_at)
            self._down = False
            self._set_gauge(False)
        self._suspect_at = None
        self._cause = ""
