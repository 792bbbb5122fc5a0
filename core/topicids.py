"""Which incarnation of each pipeline topic a scoring process reads and writes.

A topic deleted and created again under the same name is a new topic with a new topic id
(KIP-516), but neither Kafka's produce and transactional offset commits as librdkafka sends
them nor the records a consumer hands over say which one they meant: they go by name. So a
transaction open while its topics are deleted and created again can commit into the new topics
what it read from, and computed for, the old ones: records it produced after the new topics
appeared (or retried into them), records its consumer had prefetched from the old input, and
input offsets of the old input, which then point anywhere in the new one. Seen once in a
clean-clone CI (test_topics_recreated): two scores of the deleted input in the new
fraud-scores.

`TopicGuard` learns the topic ids when the process starts and, before each commit, once every
record of the transaction is acknowledged, asks for them again: an id that changed or a topic
that is gone means the transaction is aborted and the process starts anew on what is there
now (`flush_and_ask`, then `confirm` before commit_transaction). Any record acknowledged before
that answer is in the topic it was meant for, since topic ids are never reused, and the input
offsets go in only with the commit that follows. The cost is one metadata round trip per
transaction, overlapped with send_offsets_to_transaction (figures in docs/service.md)."""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence, TypeVar

from confluent_kafka import KafkaError, KafkaException, TopicCollection

from core import topicidleak
from core.txn import AbortRequired, kafka_cause, raise_txn_error

__all__ = ["TopicGuard", "TopicsReplaced", "id_changes", "flush_and_ask", "confirm"]

T = TypeVar("T")
# A broker that died takes a request's whole timeout; then a new client asks, until the answer
# is this late (a commit then still has half the 30 s transaction timeout).
_REQUEST_TIMEOUT_S = 5.0
_ANSWER_WITHIN_S = 15.0
# Records for a deleted topic wait unacknowledged up to the transaction timeout: the flush asks
# for the ids this often meanwhile, so a deletion ends the transaction within a second or two.
_FLUSH_SLICE_S = 1.0


class TopicsReplaced(Exception):
    """A topic of the open transaction was deleted, or deleted and created again."""


def id_changes(learned: dict[str, str], now: dict[str, str | None]) -> list[str]:
    """What differs between the ids `learned` at start and the ids asked for `now` (None: the
    topic does not exist): at most two phrases, topics in the order of `learned`."""
    gone = [name for name in learned if now.get(name) is None]
    new = [name for name, was in learned.items() if now.get(name) not in (None, was)]
    changes = []
    if new:
        changes.append(f"{', '.join(new)} {'was' if len(new) == 1 else 'were'} deleted and created again")
    if gone:
        changes.append(f"{', '.join(gone)} {'was' if len(gone) == 1 else 'were'} deleted")
    return changes


class TopicGuard:
    """The ids of `names` as learned by `learn()`, checked again by `ask()`.

    `admin`: settings of an AdminClient (core.txn.admin_settings)."""

    def __init__(self, admin: dict[str, Any], names: Sequence[str]):
        # librdkafka's 5 min would leave the client asking a broker that died for that long
        self._settings = {"topic.metadata.refresh.interval.ms": "10000", **admin}
        self._admin = _admin_client(self._settings)
        self._names = list(dict.fromkeys(names))
        self.learned: dict[str, str] = {}

    def learn(self) -> None:
        """Remember the current ids. Raises an exception (KafkaException when Kafka said no)
        when Kafka cannot answer or a topic does not exist (the caller checked that they do)."""
        ids = self._answer(self._describe())
        missing = [n for n, i in ids.items() if i is None]
        if missing:
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"topic(s) {', '.join(missing)} do not exist"))
        self.learned = ids

    def ask(self, answer_by: float | None = None) -> Callable[[], list[str]]:
        """Ask now, wait for the answer later: the returned call says how the topics differ
        from the learned ones (empty: the same topics), or raises when Kafka cannot say;
        `answer_by` (time.monotonic()) ends its asking again sooner than _ANSWER_WITHIN_S."""
        futures = self._describe()

        def answer() -> list[str]:
            within = _ANSWER_WITHIN_S if answer_by is None else \
                max(0.0, min(_ANSWER_WITHIN_S, answer_by - time.monotonic()))
            return id_changes(self.learned, self._answer(futures, within))

        return answer

    def changes_if_known(self) -> list[str]:
        """What ask() answers, waited for now, asked once (at most _REQUEST_TIMEOUT_S); empty
        when Kafka cannot say (the caller goes on as without the guard, and the check before
        the next commit decides). Once: with the brokers gone, the retries of ask() made each
        1 s slice of a flush 16 s long, and a stop() waited past the supervisor's patience."""
        try:
            return id_changes(self.learned, self._answer(self._describe(), within_s=0.0))
        except Exception:   # noqa: BLE001 - a timeout, a broker gone, a client error: unknown
            return []

    def _describe(self) -> dict[str, Any]:
        return self._admin.describe_topics(TopicCollection(self._names), request_timeout=_REQUEST_TIMEOUT_S)

    def _answer(self, futures: dict[str, Any], within_s: float = _ANSWER_WITHIN_S) -> dict[str, str | None]:
        """The ids the futures give; asked again through a new client while Kafka does not
        answer, for up to `within_s`."""
        deadline = time.monotonic() + within_s
        while True:
            try:
                return self._ids(futures)
            except Exception:   # noqa: BLE001 - a timeout, a broker gone, a client error: the same to us
                if time.monotonic() >= deadline:
                    raise
            # a new client bootstraps afresh, where the old one may keep asking a dead broker
            self._admin = _admin_client(self._settings)
            futures = self._describe()

    def _ids(self, futures: dict[str, Any]) -> dict[str, str | None]:
        ids: dict[str, str | None] = {}
        for name in self._names:
            try:
                description = futures[name].result()
            except KafkaException as exc:
                if exc.args and isinstance(exc.args[0], KafkaError) \
                        and exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    ids[name] = None
                else:
                    raise
            else:
                ids[name] = str(description.topic_id)
                topicidleak.release(description)   # asked before every commit: must not pile up
        return ids


def _admin_client(settings: dict[str, Any]) -> Any:
    from confluent_kafka.admin import AdminClient

    from core.rdkafkalog import QUIET_LOG_LEVEL

    # Never polled, and made anew after each failure: its connection errors on stderr would
    # only repeat what the abort that follows says (-X log_level still wins).
    return AdminClient({"log_level": QUIET_LOG_LEVEL, **settings})


def flush_and_ask(producer: Any, guard: TopicGuard, timeout_s: float, stopping: Any = None,
                  stop_wait_s: float = 5.0, unanswered: Callable[[str, float], None] | None = None,
                  answer_by: float | None = None) -> Callable[[], list[str]]:
    """Wait until every record of the open transaction is acknowledged, then ask `guard` for
    the topics' ids; the call returned waits for the answer (give it to `confirm`), so the
    caller can do another round trip meanwhile. Raises TopicsReplaced when a topic is found
    changed while records still wait, AbortRequired when records are left unacknowledged
    after `timeout_s`, or `stop_wait_s` after `stopping` (a threading.Event) is set, or when
    Kafka cannot be asked; `unanswered("flush", seconds waited)` is told while records wait
    (core.reach); `answer_by` bounds the wait for the answer (TopicGuard.ask)."""
    start = time.monotonic()
    deadline = start + timeout_s
    stopped = False
    while True:
        if not stopped and stopping is not None and stopping.is_set():
            deadline = min(deadline, time.monotonic() + stop_wait_s)
            stopped = True
        try:
            left = producer.flush(min(_FLUSH_SLICE_S, max(0.0, deadline - time.monotonic())))
        except (KafkaException, SystemError) as exc:
            raise_txn_error("flush", kafka_cause(exc))
        if not left:
            return _asked(lambda: guard.ask(answer_by))
        if unanswered is not None:
            unanswered("flush", time.monotonic() - start)
        # Once stopping, the abort after stop_wait_s ends it anyway; and a question asked less than
        # its own timeout before the deadline could keep the flush waiting past it.
        if not stopped and deadline - time.monotonic() >= _REQUEST_TIMEOUT_S:
            changes = guard.changes_if_known()   # records wait: for a leader (a failover), or a topic gone?
            if changes:
                raise TopicsReplaced("; ".join(changes))
        if time.monotonic() >= deadline:
            raise AbortRequired("flush", KafkaError(KafkaError._TIMED_OUT,
                                                    f"{left} output records unacknowledged after {time.monotonic() - start:.0f} s"))


def confirm(answer: Callable[[], list[str]]) -> None:
    """Raise TopicsReplaced when the answer of `flush_and_ask` found a topic changed,
    AbortRequired when Kafka could not say."""
    changes = _asked(answer)
    if changes:
        raise TopicsReplaced("; ".join(changes))


def _asked(call: Callable[[], T]) -> T:
    # Kafka could not say which topics are there: abort, and try the batch again
    try:
        return call()
    except Exception as exc:   # noqa: BLE001 - KafkaException, or a client error (RuntimeError)
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else KafkaError(KafkaError._FAIL, str(exc))
        raise AbortRequired("asking for the topic ids", error) from exc
