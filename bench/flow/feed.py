"""The alert feed behind `bench alerts --web`: one read_committed consumer thread.

It keeps the newest KEEP alerts (each re-encoded as one compact JSON line, so it can go into a
server-sent event as is) numbered by arrival, alert counts per minute of `alert_time`, and the
consumer's status: connected or not, and lag (records the broker holds that it has not read).
Web clients ask `since(cursor)` for everything newer than what they have; a client that falls
more than KEEP behind gets the newest KEEP (the per-minute counts still include the rest).

    feed = AlertFeed(bootstrap, topic).start()
    cursor, alerts = feed.since(0)      # alerts: list[bytes], oldest first
    feed.stop()
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from typing import Any

import msgspec

__all__ = ["AlertFeed", "KEEP", "MINUTES", "alert_reader_settings"]

log = logging.getLogger(__name__)

KEEP = 2000      # alerts kept for late or slow clients: one second at 2,000 alerts/s
MINUTES = 30     # minutes of counts for the chart
_LAG_EVERY_S = 1.0
_ERROR_FRESH_S = 5.0  # a broker error this recent means "disconnected"


class AlertFeed:
    """Consumes the alerts topic read_committed in a thread; thread-safe reads."""

    def __init__(self, bootstrap: str, topic: str, *, from_beginning: bool = False,
                 keep: int = KEEP):
        self.bootstrap, self.topic = bootstrap, topic
        self._from_beginning = from_beginning
        self._alerts: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=keep)
        self._seq = 0
        self._minutes: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lag: int | None = None
        self.unreadable = 0
        self.assigned = False
        self.last_error: tuple[float, str] | None = None
        self.failed: str | None = None   # why the consumer thread ended, if it did
        self.gone: str | None = None     # the topic deleted: until it is assigned again

    def start(self) -> "AlertFeed":
        self._thread = threading.Thread(target=self._run, name="alert-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- reads (any thread) ------------------------------------------------------------------

    def since(self, cursor: int) -> tuple[int, list[bytes]]:
        """(new cursor, the alerts that arrived after cursor, oldest first)."""
        with self._lock:
            newer = [value for seq, value in reversed(self._alerts) if seq > cursor] \
                if self._seq > cursor else []
            return self._seq, newer[::-1]

    def minutes(self) -> list[tuple[str, int]]:
        """[(minute "YYYY-MM-DDTHH:MM", alerts)], oldest first, the last MINUTES minutes seen."""
        with self._lock:
            return sorted(self._minutes.items())[-MINUTES:]

    def status(self) -> dict:
        """What the page's status line shows about the consumer."""
        error = self.last_error
        fresh = error is not None and time.monotonic() - error[0] < _ERROR_FRESH_S
        alive = self._thread is not None and self._thread.is_alive()
        return {"connected": alive and self.assigned and not fresh, "lag": self.lag,
                "error": self.failed or self.gone or (error[1] if fresh else None),
                "unreadable": self.unreadable, "topic": self.topic}

    # -- the consumer thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._consume()
        except Exception as exc:  # the page says so (status.error) instead of going quiet
            self.failed = f"alert feed stopped: {type(exc).__name__}: {exc}"
            log.error("%s", self.failed)

    def _consume(self) -> None:
        from confluent_kafka import Consumer, KafkaError

        def on_error(err) -> None:
            self.last_error = (time.monotonic(), err.str())

        def on_assign(consumer, partitions) -> None:
            self.assigned, self.gone = True, None   # (created again)

        consumer = Consumer({**alert_reader_settings(self.bootstrap, f"fraudstream-alerts-web-{uuid.uuid4().hex[:8]}",
                                                     self._from_beginning, commit=False),
                             "error_cb": on_error})
        consumer.subscribe([self.topic], on_assign=on_assign)
        decode, encode = msgspec.json.Decoder().decode, msgspec.json.Encoder().encode
        lag_at = 0.0
        try:
            while not self._stop.is_set():
                batch = consumer.consume(num_messages=1000, timeout=0.2)
                lines, minutes = [], []
                for msg in batch:
                    if msg.error():
                        self.last_error = (time.monotonic(), msg.error().str())
                        if msg.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:   # said until it is back
                            self.gone = f"{self.topic} does not exist any more (deleted?)"
                        continue
                    try:
                        alert = decode(msg.value())
                        if not isinstance(alert, dict):
                            raise TypeError("not an object")
                    except (msgspec.DecodeError, TypeError):
                        self.unreadable += 1
                        continue
                    lines.append(encode(alert))  # one line, whatever spacing it came with
                    minutes.append(str(alert.get("alert_time", ""))[:16])
                if lines:
                    self._add(lines, minutes)
                if time.monotonic() >= lag_at:
                    self.lag = _lag(consumer)
                    lag_at = time.monotonic() + _LAG_EVERY_S
        finally:
            consumer.close()

    def _add(self, lines: list[bytes], minutes: list[str]) -> None:
        with self._lock:
            for line in lines:
                self._seq += 1
                self._alerts.append((self._seq, line))
            self._minutes.update(minutes)
            if len(self._minutes) > 2 * MINUTES:
                for old in sorted(self._minutes)[:-MINUTES]:
                    del self._minutes[old]


def alert_reader_settings(bootstrap: str, group: str, from_beginning: bool, commit: bool) -> dict[str, Any]:
    """Consumer settings of a reader of the alerts (`bench alerts`, the web view): committed
    transactions' alerts only, from the beginning or from now on, its group's offsets kept
    (`commit`) or not."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "enable.auto.commit": commit,
        "topic.metadata.refresh.interval.ms": 10_000,   # a deleted topic seen within 10 s, not 5 min
    }


def _lag(consumer) -> int | None:
    """Records on the assigned partitions the consumer has not read yet (None before it has
    an assignment or when the broker does not answer)."""
    from confluent_kafka import KafkaException

    try:
        assignment = consumer.assignment()
        if not assignment:
            return None
        total = 0
        for tp in consumer.position(assignment):
            low, high = consumer.get_watermark_offsets(tp, timeout=1.0)
            total += max(0, high - (tp.offset if tp.offset >= 0 else high))
        return total
    except KafkaException:
        return None
