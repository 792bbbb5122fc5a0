"""The exactly-once scoring loop: one Kafka transaction per micro-batch.

    consume up to N records or T ms  ->  score  ->  begin_transaction
    -> produce scores / alerts / dead letters  ->  flush, ask for the topic ids
    -> send_offsets_to_transaction(per partition of the batch: last processed offset + 1)
    -> the topic ids unchanged  ->  commit_transaction

Outputs and input offsets commit atomically, so a process killed at any instant leaves
either the whole batch (outputs + offsets) or none of it; its replacement (same worker slot,
same transactional.id) aborts the open transaction in init_transactions and resumes from the
committed offsets. A topic deleted or created again under an open transaction aborts it and
stops the process (core.topicids): Kafka would commit it into the new topic. A transaction
never spans a consume() call, so rebalance callbacks (which run inside consume) never find
one open: partitions are given up only between transactions.

A record is never a reason to stop: an input whose outputs are too large (core.limits) or
that the broker refuses for good (core.culprits) becomes a dead letter; where a partition
without a usable committed offset starts is core.offsets' decision.

Embedding it in an existing service::

    from core import ScoringConfig, ScoringConsumer, Scorer
    consumer = ScoringConsumer(ScoringConfig(bootstrap_servers="kafka:9092"), Scorer.load())
    consumer.run()          # blocks; consumer.stop() from a signal handler or another thread
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from core.cardstate import CardStates
from core.config import ScoringConfig, check_consumer_args, kafka_int
from core.culprits import Culprits
from core.errors import ConfigError, ExpiredByKafka, PipelineError, SettingRefused
from core.faults import HANG_WATCH_S, faults_from_env
from core.identity import kafka_error_of
from core.limits import DEFAULT_MAX_MESSAGE_BYTES, OutputLimits
from core.metrics import LoopMetrics, Ticker, consumer_lag, format_stats
from core.offsets import (is_reset_refused, next_offsets, offset_reset_paused, offset_reset_refused, plan_start,
                          refused_text)
from core.preflight import check_client_settings
from core.rdkafkalog import client_logger
from core.reach import KafkaReach
from core.routing import produce_outputs
from core.stateholds import StateHolds
from core.topicids import TopicGuard, TopicsReplaced, confirm, flush_and_ask
from core.txnwatch import STUCK_S, CallWatch
from core.workerstart import check_topics, init_transactions, output_limits
from core.txn import (TXN_CALL_S, AbortRequired, StoppedWaiting, admin_settings, consumer_settings, expiry,
                      kafka_cause, poll_budget_s, producer_settings, raise_produce_error, reader_settings, txn_call,
                      worker_id)

__all__ = ["ScoringConsumer"]

log = logging.getLogger(__name__)

# After this many aborts in a row without one commit, something is structurally wrong
# (ACLs revoked, a broker refusing every transaction): stop rather than spin.
_MAX_CONSECUTIVE_ABORTS = 10
_LAG_REFRESH_S = 1.0
_ABORT_BEFORE_EXIT_S = 10.0
# How long a flush still waits for acknowledgements once stop() came: then the transaction is
# aborted (TXN_CALL_S) or, with Kafka away, left open; all well within the supervisor's 30 s.
_FLUSH_AFTER_STOP_S = 2.0


def _setting(settings: dict[str, Any], key: str, default: int) -> int:
    """An integer librdkafka setting as librdkafka reads it ("60000ms", "0x7530" included)."""
    value = kafka_int(settings.get(key, default))
    return default if value is None else value


class ScoringConsumer:
    """Consume transactions, score them with `scorer`, produce results exactly once.

    `slot` is this process's worker number: it fixes the transactional.id (and the static
    group.instance.id), so a restarted slot fences its dead predecessor. Give every
    concurrently running ScoringConsumer of one group a distinct slot (or prefix).
    """

    def __init__(self, config: ScoringConfig, scorer: Any, *, slot: int = 0,
                 metrics: LoopMetrics | None = None, on_started: Callable[[], None] | None = None,
                 on_stuck: Callable[[str, float], None] | None = None):
        check_consumer_args(config, scorer, slot)
        self.config = config
        self.on_started = on_started   # called once it consumes (transactions initialised, topics found)
        self.name = worker_id(config, slot)
        self._faults = faults_from_env()   # test only; None unless FRAUDSTREAM_FAULTS is set
        # on_stuck is called (from another thread) with a transactional call librdkafka has not
        # returned from in core.txnwatch.STUCK_S; by default an error line: the service's worker exits
        self.metrics = metrics or LoopMetrics.shared()
        self._reach = KafkaReach(self.name, self.metrics.set_unreachable)
        hang = self._faults is not None and "hang" in self._faults.rates
        self._watch = CallWatch(self.name, on_stuck, HANG_WATCH_S if hang else STUCK_S,
                                on_overdue=self._reach.overdue)
        self.scorer = scorer
        self.slot = slot
        self._stopping = threading.Event()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._assigned: set[int] = set()
        self._rebalanced = False
        self._txn_open = False
        # True once run() has returned leaving its transaction open (stop() came while Kafka did
        # not answer): a producer initialising this slot's transactional.id aborts it at once
        # (the service's supervisor does), Kafka itself after transaction.timeout.ms.
        self.left_open = False
        self._txn_began = 0.0   # time.monotonic() at begin_transaction
        self._txn_timeout_s = 30.0   # transaction.timeout.ms, as the producer is given it
        self._polled_at = time.monotonic()   # the last consume() returned (core.txn.poll_budget_s)
        self._poll_budget_s = poll_budget_s(kafka_int(consumer_settings(config, slot).get("max.poll.interval.ms")))
        self._aborts_in_row = 0
        self._limits = OutputLimits.uniform(config.topics)
        self._culprits = Culprits()
        self._refused: set[int] = set()   # partitions paused by offset_reset=refuse, already reported
        offset_reset_refused()   # its counter on /metrics at 0 from the start, as documented
        offset_reset_paused().set(0)
        self._uncommitted: set[int] = set()   # assigned partitions without a committed batch yet
        self._lag_from: dict = {}   # committed offsets of partitions with no position yet (core.metrics)
        self._lag_highs: dict = {}   # watermarks of partitions not fetched (paused), asked (core.metrics)
        if getattr(scorer, "needs_velocity", False) and not config.state:
            from core.velocity import VELOCITY_FEATURES
            raise ConfigError(f"state: the model uses {', '.join(VELOCITY_FEATURES)}, which only "
                              "the per-card state computes: turn state on (it is on unless --no-state or "
                              "`state: false` turns it off)")
        self._cards = CardStates(config, self.name, getattr(scorer, "model_version", "")) if config.state else None
        # partitions whose card state cannot be restored: paused, retried (core.stateholds)
        self._holds = StateHolds(self.name, config.topics.transactions) if config.state else None
        self._guard: TopicGuard | None = None   # the topics' ids, checked before each commit (exactly once)
        self._flush_s = 30.0

    def stop(self) -> None:
        """Ask run() to return after the current transaction (safe from signal handlers)."""
        self._stopping.set()

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> None:
        """Score until stop(); raises PipelineError on a fatal Kafka error (e.g. fenced; ExpiredByKafka
        when Kafka gave up on this worker's transaction or membership) or when Kafka cannot be
        reached at start, and ConfigError when the configured topics do not exist or librdkafka
        refuses a `kafka` setting."""
        cfg = self.config
        check_client_settings(cfg)   # a bad `kafka` key: one ConfigError, before any client connects
        settings = producer_settings(cfg, self.slot)
        self._txn_timeout_s = _setting(settings, "transaction.timeout.ms", 30000) / 1000.0
        self._limits = output_limits(cfg, self.name, _setting(settings, "message.max.bytes", DEFAULT_MAX_MESSAGE_BYTES),
                                     _setting(settings, "batch.size", DEFAULT_MAX_MESSAGE_BYTES), self._stopping)
        if self._limits.batch_cap is not None:
            settings["batch.size"] = str(self._limits.batch_cap)
        if self._cards is not None:   # ConfigError when a card's state record may not fit
            self._cards.set_limit(self._limits.of(cfg.topics.state))
        settings["on_delivery"] = self._culprits.on_delivery
        settings.update(error_cb=self._reach.on_error, logger=client_logger())
        self._producer = Producer(settings)
        try:
            if cfg.exactly_once:
                init_transactions(self._producer, self._stopping, self.name, cfg.bootstrap_servers, self._watch)
            if self._stopping.is_set():
                return   # never join the group once stopped: it would fence the slot's replacement
            self._consumer = Consumer({**consumer_settings(cfg, self.slot), "error_cb": self._reach.on_error,
                                       "logger": client_logger()})
            check_topics(self._consumer, cfg)
            if cfg.exactly_once and cfg.topic_guard:
                self._learn_topics()
            self._consumer.subscribe([cfg.topics.transactions], on_assign=self._on_assign,
                                     on_revoke=self._on_revoke, on_lost=self._on_lost)
            log.info("%s: consuming %s (group %s, %s, batch %d records / %d ms)", self.name,
                     cfg.topics.transactions, cfg.group_id,
                     "exactly-once" if cfg.exactly_once else "AT-LEAST-ONCE",
                     cfg.batch_max_records, cfg.batch_max_wait_ms)
            if not self._stopping.is_set():
                if self.on_started is not None:
                    self.on_started()
                self._loop()
        except PipelineError as exc:
            open_s = time.monotonic() - self._txn_began if self._txn_open else None
            why = expiry(kafka_error_of(exc), open_s, self._txn_timeout_s, self._reach.unreachable_lately())
            if why is None:
                raise
            raise ExpiredByKafka(f"{self.name}: {why}. It now refuses the worker as if another process had its "
                                 f"ids (most likely none has): the restart resumes from the committed offsets. "
                                 f"{exc}") from exc
        except StoppedWaiting as exc:
            # Aborting would wait for Kafka as well: the slot's next start aborts it (or Kafka, after
            # transaction.timeout.ms), and until then read_committed readers wait for it.
            log.warning("%s: stopped while Kafka did not answer (%s): its open transaction is left to be "
                        "aborted", self.name, exc)
            self._txn_open = False
            self.left_open = True
        finally:
            self._close()

    def _budget_end(self) -> float:
        """When the waits of the batch in hand must end (time.monotonic(); core.txn.poll_budget_s)."""
        return self._polled_at + self._poll_budget_s

    def _within_budget(self, cap_s: float) -> float:
        # a wait of at most cap_s, within the batch's poll budget, at least a second
        return max(1.0, min(cap_s, self._budget_end() - time.monotonic()))

    def _learn_topics(self) -> None:
        topics = self.config.topics
        self._guard = TopicGuard(admin_settings(self.config), topics.all() + ((topics.state,) if self.config.state else ()))
        # the flush before the check waits as long as commit_transaction's own would
        self._flush_s = self._txn_timeout_s
        try:
            self._guard.learn()
        except Exception as exc:   # noqa: BLE001 - KafkaException, or a client error
            raise PipelineError(f"{self.name}: cannot read the ids of the topics: "
                                f"{exc.args[0] if exc.args else exc!r}") from exc

    def _close(self) -> None:
        if self._txn_open:
            abort_s = self._within_budget(_ABORT_BEFORE_EXIT_S)   # what is left open, the slot's next start aborts
            self._watch.begin("abort_transaction", abort_s)
            try:
                self._producer.abort_transaction(abort_s)
            except (KafkaException, SystemError) as exc:
                log.warning("%s: abort on close failed: %s", self.name, kafka_cause(exc))
            finally:
                self._watch.end()
            self._txn_open = False
        state = ""
        if self._cards is not None:   # its final gauges and line, before the consumer close revokes (drops) them
            self._cards.close()
            state = self._cards.stats_text()
        offset_reset_paused().set(0)   # a stopped loop pauses nothing
        self._reach.close()
        if self._consumer is not None:
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("%s: consumer close: %s", self.name, exc)
        if self._producer is not None:
            try:
                self._producer.flush(5.0)
            except (KafkaException, SystemError) as exc:  # fenced or fatal: never mask the error that got us here
                log.warning("%s: producer flush on close: %s", self.name, kafka_cause(exc).args[0])
        snap = self.metrics.snapshot()
        log.info("%s: stopped. %s%s", self.name, format_stats(snap, type(snap)(), 0.0), state)

    # -- rebalance callbacks (called from inside consume(), never mid-transaction) -----------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.config.offset_reset == "refuse":
            topics = self.config.topics
            try:
                partitions, refused = plan_start(self.name, topics.transactions, (topics.scores, topics.deadletter),
                                                 partitions, reader_settings(self.config))
            except KafkaException as exc:
                raise PipelineError(f"{self.name}: cannot read the group's committed offsets: {exc.args[0]}") from exc
            self._refused.update(refused)
            consumer.assign(partitions)
        self._assigned.update(tp.partition for tp in partitions)
        self._uncommitted.update(tp.partition for tp in partitions)
        self._lag_from.clear()
        self._lag_highs.clear()
        self._rebalanced = True
        log.info("%s: assigned %s", self.name, sorted(self._assigned))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._abort_if_open("partitions revoked")
        self._assigned.difference_update(tp.partition for tp in partitions)
        self._refused.difference_update(tp.partition for tp in partitions)
        self._uncommitted.difference_update(tp.partition for tp in partitions)
        self._drop_state(partitions)
        self._rebalanced = True
        log.info("%s: revoked %s", self.name, sorted(tp.partition for tp in partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._abort_if_open("partitions lost")
        self._assigned.difference_update(tp.partition for tp in partitions)
        self._refused.difference_update(tp.partition for tp in partitions)
        self._uncommitted.difference_update(tp.partition for tp in partitions)
        self._drop_state(partitions)
        self._rebalanced = True
        log.warning("%s: lost %s", self.name, sorted(tp.partition for tp in partitions))

    def _drop_state(self, partitions) -> None:
        # Another owner may score these partitions next: whatever we hold may become stale,
        # so a later assignment restores them from the changelog again.
        if self._cards is not None:
            numbers = [tp.partition if isinstance(tp, TopicPartition) else tp for tp in partitions]
            self._cards.drop(numbers)
            self._holds.forget(numbers)

    def _abort_if_open(self, why: str) -> None:
        if self._txn_open:
            log.warning("%s: %s with a transaction open: aborting it", self.name, why)
            self._txn("abort_transaction", self._producer.abort_transaction, TXN_CALL_S)
            self._txn_open = False

    def _txn(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """txn_call, bounded waits: Kafka not answering is reported (core.reach), stop() honoured."""
        return txn_call(what, fn, *args, stopping=self._stopping, unanswered=self._unanswered, watch=self._watch,
                        give_up_at=self._budget_end())

    def _unanswered(self, what: str, waited_s: float) -> None:
        # The producer's callbacks wait for a poll: its error_cb may hold _ALL_BROKERS_DOWN, which
        # makes a 5 s wait count as an outage (not only after 30 s).
        self._producer.poll(0)
        self._reach.no_answer(what, waited_s)

    # -- the loop -----------------------------------------------------------------------------

    def _loop(self) -> None:
        cfg = self.config
        consume = self._consumer.consume
        n, timeout = cfg.batch_max_records, cfg.batch_max_wait_ms / 1000.0
        stats = Ticker(cfg.stats_interval_s)
        lag = Ticker(_LAG_REFRESH_S)
        before = self.metrics.snapshot()
        while not self._stopping.is_set():
            msgs = consume(num_messages=n, timeout=timeout)
            self._polled_at = time.monotonic()
            if msgs:
                self._process(msgs)
            if self._holds:
                self._holds.resume_due(self._consumer)
            if self._reach.probe_due():
                self._reach.probe(self._consumer, cfg.topics.transactions)
            if lag.due():
                self._producer.poll(0)   # its log lines and errors, while no commit flushes it
                offset_reset_paused().set(len(self._refused))   # what /healthz reads, at most 1 s old
                total = consumer_lag(self._consumer, self._lag_from, self._lag_highs)
                if total is not None:
                    self.metrics.set_lag(total)
            elapsed = stats.due()
            if elapsed:
                now = self.metrics.snapshot()
                log.info("%s%s", format_stats(now, before, elapsed, self.name),
                         self._cards.stats_text() if self._cards is not None else "")
                before = now

    def _process(self, msgs: list[Any]) -> None:
        good = [m for m in msgs if m.error() is None]
        if len(good) != len(msgs):
            for m in msgs:
                if m.error() is not None:
                    self._consume_error(m)
        if self._rebalanced:
            # Defensive: records of a partition revoked during consume() belong to its new owner.
            assigned = self._assigned
            good = [m for m in good if m.partition() in assigned]
            self._rebalanced = False
        if self._cards is not None:
            good = self._holds.admit(self._cards, self._consumer, good)
        if not good:
            return
        culprits = self._culprits
        if culprits.suspects and culprits.has_suspects(good):
            # Records of a batch the broker rejected: each suspect in a transaction of its own.
            pieces = culprits.pieces(good)
            done = 0
            for piece in pieces:
                if not self._process_piece(piece, good[done:]):
                    return
                done += len(piece)
            return
        self._process_piece(good, good)

    def _process_piece(self, msgs: list[Any], pending: list[Any]) -> bool:
        """Score and commit `msgs`; on an abort, rewind the partitions of `pending` (msgs and
        what follows it in the batch) and return False."""
        velocity = self._cards.velocity(self._consumer, msgs) if self._cards is not None else None
        result = self.scorer.score_batch([m.value() or b"" for m in msgs], velocity)
        offsets = next_offsets(self.config.topics.transactions, msgs, self._assigned)
        divert = self._culprits.divert(msgs)
        if self.config.exactly_once:
            done = self._commit_transaction(msgs, result, offsets, divert, pending)
        else:
            done = self._commit_at_least_once(msgs, result, offsets, divert)
        if done is None:
            return False
        commit_s, diverted = done
        if self._uncommitted:
            self._log_first_commit(offsets)
        alerts = len(result.alerts)
        if diverted:
            alerts -= sum(1 for idx, _ in result.alerts if idx in diverted)
            for idx, reason in diverted.items():
                m = msgs[idx]
                log.warning("%s: %s[%d]@%d is a dead letter: %s", self.name, m.topic(), m.partition(), m.offset(), reason)
        self.metrics.record_batch(len(msgs), len(result.scored) - len(diverted), alerts,
                                  len(result.dead) + len(diverted), commit_s)
        return True

    def _log_first_commit(self, offsets: list[TopicPartition]) -> None:
        # How long a partition was out of service after a kill or a rebalance (restore
        # included) ends here: `bench run` reads this line from the service's log.
        first = sorted(tp.partition for tp in offsets if tp.partition in self._uncommitted)
        if first:
            self._uncommitted.difference_update(first)
            log.info("%s: committed the first batch of %s%s since assigned", self.name,
                     self.config.topics.transactions, first)

    def _commit_transaction(self, msgs: list[Any], result: Any, offsets: list[TopicPartition],
                            divert: dict[int, str], pending: list[Any]) -> tuple[float, dict[int, str]] | None:
        producer = self._producer
        self._culprits.begin()
        try:
            self._txn("begin_transaction", producer.begin_transaction)
            self._txn_open, self._txn_began = True, time.monotonic()
            try:
                diverted = produce_outputs(producer, self.config.topics, msgs, result, self._limits, divert)
                if self._cards is not None:
                    self._cards.produce_changes(producer, offsets)
                if self._faults is not None:
                    self._faults.hit("stall")
                    self._faults.hit("produce")
            except (KafkaException, SystemError) as exc:
                raise_produce_error(kafka_cause(exc))
            t0 = time.perf_counter()
            # The topics' ids are asked once every record is acknowledged (core.topicids), the
            # answer awaited after send_offsets: the two round trips overlap.
            guard = self._guard
            budget_end = self._budget_end()
            flush_s = min(self._flush_s, max(0.0, budget_end - time.monotonic()))
            answer = flush_and_ask(producer, guard, flush_s, self._stopping, _FLUSH_AFTER_STOP_S,
                                   self._reach.flush_waits, budget_end) if guard is not None else None
            if self._faults is not None:   # (acknowledged by the flush above: the topic guard is on by default)
                self._faults.hit("stall_acked")
            self._txn("send_offsets_to_transaction", producer.send_offsets_to_transaction,
                      offsets, self._consumer.consumer_group_metadata(), TXN_CALL_S)
            if self._faults is not None:
                self._txn("commit_transaction", self._faults.hit, "commit")
                self._txn("commit_transaction", self._faults.hit, "hang")
            if answer is not None:
                confirm(answer)
            self._txn("commit_transaction", producer.commit_transaction, TXN_CALL_S)
            self._txn_open = False
            self._reach.answered()
            self._aborts_in_row = 0
            self._culprits.committed(msgs)
            return time.perf_counter() - t0, diverted
        except AbortRequired as exc:
            self._abort_and_rewind(pending, exc, msgs, result)
            return None
        except TopicsReplaced as exc:
            aborted = "aborted that transaction"
            abort_s = self._within_budget(_ABORT_BEFORE_EXIT_S)   # what is left open, the slot's next start aborts
            self._watch.begin("abort_transaction", abort_s)
            try:   # bounded: this process stops either way, and its restart aborts what is left open
                producer.abort_transaction(abort_s)
            except Exception as abort_exc:   # noqa: BLE001 - fenced, timed out, or a SystemError
                aborted = f"that transaction is left to the restart to abort ({abort_exc})"
            finally:
                self._watch.end()
            self._txn_open = False
            raise PipelineError(f"{self.name}: {exc} while a transaction read or wrote it: {aborted}; this "
                                "worker stops, and its restart starts on the topics as they are now") from None

    def _learn_partitions(self) -> None:
        """Partitions added to the input (and the changelog, as the operator must) are assigned
        after the consumer's metadata refresh, but the producer refreshes its own only every 5
        min: its changelog record for a new partition then fails as an unknown partition. Asking
        for the topic refreshes the producer's view, so the retry goes through (instead of ten
        aborts in a row and a restart)."""
        topic = self.config.topics.state
        try:
            count = len(self._producer.list_topics(topic, timeout=10.0).topics[topic].partitions)
        except (KafkaException, KeyError) as exc:
            log.warning("%s: cannot refresh the producer's metadata of %s: %s", self.name, topic, exc)
            return
        log.info("%s: the producer now knows %d partitions of %s", self.name, count, topic)

    def _abort_and_rewind(self, pending: list[Any], cause: AbortRequired, msgs: list[Any], result: Any) -> None:
        log.warning("%s: aborting transaction (%s); retrying batch from committed offsets", self.name, cause)
        self._txn("abort_transaction", self._producer.abort_transaction, TXN_CALL_S)
        self._txn_open = False
        self._drop_state({m.partition() for m in msgs})   # they applied the aborted batch
        self.metrics.record_abort()
        if cause.error.code() == KafkaError._UNKNOWN_PARTITION:
            self._learn_partitions()
        found, culprit = self._culprits.after_abort(self.config.topics, msgs, result)
        if found:
            log.warning("%s: %s", self.name, found)
        if not culprit:   # a newly found culprit is progress: each batch holds finitely many
            self._aborts_in_row += 1
        if self._aborts_in_row >= _MAX_CONSECUTIVE_ABORTS:
            raise PipelineError(f"{self.name}: {self._aborts_in_row} transactions aborted in a row; last: {cause}")
        if self._stopping.is_set():
            return   # run() returns next: the next start resumes from the committed offsets (no wait for them now)
        self._rewind(pending)

    def _rewind(self, msgs: list[Any]) -> None:
        topic = self.config.topics.transactions
        first: dict[int, int] = {}
        for m in msgs:
            first.setdefault(m.partition(), m.offset())
        wanted = [TopicPartition(topic, p) for p in first if p in self._assigned]
        try:
            committed = {tp.partition: tp.offset
                         for tp in self._consumer.committed(wanted, timeout=self._within_budget(10.0))}
        except KafkaException as exc:
            log.warning("%s: committed offsets unavailable (%s); rewinding to batch start", self.name, exc)
            committed = {}
        for tp in wanted:
            offset = committed.get(tp.partition, -1)
            target = offset if offset >= 0 else first[tp.partition]
            try:
                self._consumer.seek(TopicPartition(topic, tp.partition, target))
            except KafkaException as exc:
                # Carrying on would commit offsets past the aborted records: exit instead, and
                # the restarted slot resumes from the committed offsets.
                raise PipelineError(f"{self.name}: cannot rewind {topic}[{tp.partition}] to {target} "
                                    f"after an abort: {exc}") from exc

    def _stop_if_topics_replaced(self) -> None:
        # A worker without a transaction open when its topics were deleted and created again
        # fetches the new input from its old positions: "out of range" (or worse, inside it).
        # Its restart starts on the topics as they are; a partition it cannot tell is refused.
        changes = self._guard.changes_if_known() if self._guard is not None else []
        if changes:
            raise PipelineError(f"{self.name}: {'; '.join(changes)}: this worker stops, and its restart "
                                "starts on the topics as they are now")

    def _commit_at_least_once(self, msgs: list[Any], result: Any, offsets: list[TopicPartition],
                              divert: dict[int, str]) -> tuple[float, dict[int, str]]:
        # Kept only to prove the kill test detects its duplicates (see txn.consumer_settings).
        diverted = produce_outputs(self._producer, self.config.topics, msgs, result, self._limits, divert)
        if self._cards is not None:
            self._cards.produce_changes(self._producer, offsets)
        t0 = time.perf_counter()
        if self._producer.flush(30.0):
            raise PipelineError(f"{self.name}: outputs not delivered within 30 s")
        self._consumer.store_offsets(offsets=offsets)
        return time.perf_counter() - t0, diverted

    def _consume_error(self, msg: Any) -> None:
        error = msg.error()
        where = f"{msg.topic()}[{msg.partition()}]" if msg.topic() else f"group {self.config.group_id}"
        # A fatal consumer error (e.g. static member fenced by a newer one with the same
        # group.instance.id) arrives as a message with code _FATAL, not always flagged fatal().
        if error.fatal() or error.code() == KafkaError._FATAL:
            raise PipelineError(f"{self.name}: fatal consumer error on {where}: {error.str()}") \
                from KafkaException(error)   # the cause says "fenced" to the supervisor (core.worker)
        if is_reset_refused(error):   # offset_reset=refuse: librdkafka left the partition paused
            self._stop_if_topics_replaced()
            if msg.partition() not in self._refused:   # not already reported at assignment
                self._refused.add(msg.partition())
                log.error("%s", refused_text(self.name, msg.topic(), [msg.partition()], error.str()))
                offset_reset_refused().inc()
            return
        if error.code() == KafkaError.INVALID_SESSION_TIMEOUT:   # the group join fails every 2 s, forever
            raise SettingRefused(f"kafka.session.timeout.ms: the broker at {self.config.bootstrap_servers} refuses "
                              f"it ({error.str()}): keep it within its group.min.session.timeout.ms and "
                              f"group.max.session.timeout.ms (6 s and 30 min by default)")
        if error.code() != KafkaError._PARTITION_EOF:
            log.warning("%s: consumer error on %s: %s", self.name, where, error.str())
