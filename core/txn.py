"""Kafka client settings for one scoring process and the error rules of Kafka transactions.

librdkafka classifies every transactional error (KafkaError.retriable / txn_requires_abort /
fatal); `txn_call` turns that into three outcomes: the call succeeded (after retrying the
retriable), `AbortRequired` (abort, rewind, try the batch again), or `PipelineError` (the
producer is unusable, e.g. fenced by a newer incarnation of the same worker slot: exit).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, TypeVar

from confluent_kafka import KafkaError, KafkaException

from core.config import ScoringConfig, kafka_bool
from core.errors import PipelineError
from core.identity import is_fenced

__all__ = ["consumer_settings", "reader_settings", "producer_settings", "admin_settings", "worker_id", "txn_call", "raise_txn_error",
           "raise_produce_error", "kafka_cause", "AbortRequired", "StoppedWaiting", "TXN_CALL_S",
           "TXN_GIVE_UP_S", "expiry", "poll_budget_s"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# Defaults the user may override through ScoringConfig.kafka.
_CONSUMER_DEFAULTS = {
    # Eager, not cooperative-sticky: with static membership a rejoining member gets the
    # group's cached assignment and no rebalance runs. After an interrupted cooperative
    # rebalance that cached assignment can leave partitions unowned forever (seen here after
    # a SIGTERM mid-rebalance and a restart); an eager assignment always covers them all.
    "partition.assignment.strategy": "roundrobin",
    # A SIGKILLed worker holds its partitions until its session expires, unless its slot is
    # restarted first (static membership makes that instant). The session must outlast a
    # group coordinator's failover: a KRaft broker is declared dead after 9 s
    # (broker.session.timeout.ms), and at 10 s a loaded 3-node cluster saw all six sessions
    # run out and four rejoins fenced as duplicates of themselves (librdkafka #3437).
    "session.timeout.ms": "30000",
    "heartbeat.interval.ms": "1000",
    "enable.partition.eof": "false",
    # Partitions added to the input are noticed at the next metadata refresh (a rebalance,
    # whose restores hold partitions of the old count: core.restorecheck). Until then records
    # sent under the new count are scored from the old partitions' state: at librdkafka's
    # 5 min, up to 5 min of them; at 10 s, one small metadata request per 10 s per worker.
    "topic.metadata.refresh.interval.ms": "10000",
}
_PRODUCER_DEFAULTS = {
    # commit_transaction flushes at once anyway; a long linger only makes the requests of
    # one transaction fewer and larger (measured: ~8% less CPU in the workers and broker).
    "linger.ms": "100",
    # A killed worker's open transaction holds back read_committed readers of the outputs
    # until it is aborted: by the restarted slot's init_transactions (seconds), or by this
    # timeout. librdkafka also makes it the records' delivery timeout, so it must outlast a
    # partition leader's failover (9 s to declare a broker dead, then an election): at 10 s,
    # records for a killed node's partitions timed out and the worker's producer was fenced.
    "transaction.timeout.ms": "30000",
    # The 100 ms default backoff is a floor on back-to-back transactions
    # (CONCURRENT_TRANSACTIONS retries after a commit).
    "retry.backoff.ms": "10",
    # ... and librdkafka doubles that backoff on every retry up to this cap (default 1000).
    # The next transaction's AddOffsetsToTxn / AddPartitionsToTxn often gets
    # CONCURRENT_TRANSACTIONS while the broker still writes the previous commit markers;
    # a low cap retries soon after the markers are done. Measured at 1,000 tx/s:
    # send_offsets p50 7.9 -> 4.8 ms, end-to-end p99 356 -> 147 ms (loaded machine).
    "retry.backoff.max.ms": "20",
    "queue.buffering.max.messages": "500000",
    # Nobody waits on per-record delivery reports: a failed record fails the commit
    # (abortable), so only errors need to cross into Python.
    "delivery.report.only.error": True,
    # librdkafka's producer would have a broker with auto.create.topics.enable (Kafka's default)
    # create a deleted output or state topic anew with the broker's defaults (one partition, not
    # compacted) the moment a batch is produced to it: the worker is to stop on the missing topic
    # instead, and its restarts say to create it (core.workerstart.check_topics).
    "allow.auto.create.topics": "false",
}


# One passthrough dict configures both clients; librdkafka warns on every start about keys of
# the other kind, so each client gets only the keys that apply to it (anything unknown to
# these lists goes to both, and librdkafka judges it).
# Keys of both kinds that one client's defaults set: a user's value goes to both clients.
_EITHER = frozenset({"allow.auto.create.topics", "topic.metadata.refresh.interval.ms"})
_CONSUMER_ONLY = frozenset(_CONSUMER_DEFAULTS) - _EITHER | {"auto.offset.reset",
    "fetch.min.bytes", "fetch.wait.max.ms", "fetch.max.bytes", "max.partition.fetch.bytes",
    "fetch.error.backoff.ms", "fetch.queue.backoff.ms", "queued.min.messages",
    "queued.max.messages.kbytes", "max.poll.interval.ms", "check.crcs", "isolation.level",
    "group.protocol", "group.remote.assignor", "enable.auto.offset.store", "auto.commit.interval.ms",
}
_PRODUCER_ONLY = frozenset(_PRODUCER_DEFAULTS) - _EITHER | {
    "linger.ms", "queue.buffering.max.ms", "queue.buffering.max.kbytes", "batch.size",
    "batch.num.messages", "compression.type", "compression.codec", "compression.level", "acks",
    "request.required.acks", "message.timeout.ms", "delivery.timeout.ms", "retries",
    "message.send.max.retries", "enable.idempotence", "transaction.timeout.ms",
    "sticky.partitioning.linger.ms", "partitioner",
}


def worker_id(config: ScoringConfig, slot: int) -> str:
    """Stable identity of worker slot `slot`: its transactional.id and group.instance.id."""
    return f"{config.txn_id_prefix()}-{slot}"


def reader_settings(config: ScoringConfig) -> dict[str, Any]:
    """An assign()-only reader beside the group's consumer (the card-state restore and replay,
    the output probe of offset_reset refuse): the group consumer's cluster and client settings,
    read_committed, no static membership of its own, an event at each partition's end."""
    settings = consumer_settings(config, 0)
    settings.pop("group.instance.id", None)
    settings["enable.partition.eof"] = "true"
    return settings


def consumer_settings(config: ScoringConfig, slot: int) -> dict[str, Any]:
    kafka = {k: v for k, v in config.kafka.items() if k not in _PRODUCER_ONLY}
    settings = {**_CONSUMER_DEFAULTS, **kafka,
                "bootstrap.servers": config.bootstrap_servers,
                "group.id": config.group_id,
                "enable.auto.commit": "false",
                "isolation.level": "read_committed",
                # "error": librdkafka reports a missing or out-of-range offset instead of
                # resetting it, and core.offsets decides (ScoringConfig.offset_reset).
                "auto.offset.reset": "error" if config.offset_reset == "refuse" else config.offset_reset}
    if config.static_membership:
        settings["group.instance.id"] = worker_id(config, slot)
    if not config.exactly_once:
        # The usual hand-rolled at-least-once loop: a batch's offsets are stored once its
        # outputs are delivered, and the consumer commits what is stored every
        # auto.commit.interval.ms (5 s). A kill re-reads everything since: duplicates.
        settings["enable.auto.commit"] = "true"
        settings["enable.auto.offset.store"] = "false"
    return settings


def admin_settings(config: ScoringConfig) -> dict[str, Any]:
    """Settings of an AdminClient beside the two clients: connection and security keys only."""
    kafka = {k: v for k, v in config.kafka.items() if k not in _CONSUMER_ONLY and k not in _PRODUCER_ONLY}
    return {**kafka, "bootstrap.servers": config.bootstrap_servers}


def producer_settings(config: ScoringConfig, slot: int) -> dict[str, Any]:
    kafka = {k: v for k, v in config.kafka.items() if k not in _CONSUMER_ONLY}
    settings = {**_PRODUCER_DEFAULTS, **kafka,
                "bootstrap.servers": config.bootstrap_servers,
                "enable.idempotence": "true"}
    # confluent-kafka handles this key in Python and insists on a bool.
    settings["delivery.report.only.error"] = kafka_bool(settings["delivery.report.only.error"])
    if config.exactly_once:
        settings["transactional.id"] = worker_id(config, slot)
    else:
        settings.pop("transaction.timeout.ms", None)
    return settings


class AbortRequired(Exception):
    """The open transaction must be aborted and the batch retried from committed offsets."""

    def __init__(self, what: str, error: KafkaError):
        super().__init__(f"{what}: {error.str()}")
        self.error = error


# A producer whose epoch Kafka has moved on: a newer instance, or Kafka's own abort (expiry).
_PRODUCER_FENCED = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})


def _fatal(error: KafkaError) -> bool:
    return error.fatal() or error.code() in _PRODUCER_FENCED


def raise_txn_error(what: str, exc: KafkaException) -> None:
    """Raise AbortRequired or PipelineError for a non-retriable transactional error."""
    error = exc.args[0] if exc.args else None
    if not isinstance(error, KafkaError):
        raise PipelineError(f"{what}: {exc}") from exc
    if _fatal(error):
        raise PipelineError(f"{what}: fatal Kafka error, this worker must exit: {error.str()}") from exc
    if error.txn_requires_abort():
        raise AbortRequired(what, error) from exc
    raise PipelineError(f"{what}: {error.str()}") from exc


def raise_produce_error(exc: KafkaException) -> None:
    """produce() inside a transaction failed. Unless the producer is fenced or broken, abort
    and retry the batch (bounded by the loop's abort limit): once a transaction has failed,
    librdkafka refuses further records with a bare _STATE error that it flags neither
    retriable nor abortable, although aborting is exactly what recovers."""
    error = exc.args[0] if exc.args else None
    if isinstance(error, KafkaError) and not _fatal(error):
        raise AbortRequired("produce", error) from exc
    raise_txn_error("produce", exc)


# The producer's errors once Kafka has aborted its transaction (a consumer's fence is no sign of that).
_EXPIRED_TXN_CODES = _PRODUCER_FENCED | {KafkaError.INVALID_TXN_STATE}


def expiry(error: KafkaError | None, open_s: float | None, timeout_s: float, unreachable: bool) -> str | None:
    """What Kafka gave up on, when `error` is how it answers a worker it gave up on, else None.

    A transaction open past transaction.timeout.ms is aborted by Kafka, which bumps the
    producer's epoch: every later call then fails "fenced by newer producer instance", just as
    when a twin took the transactional.id (or, after an outage, INVALID_TXN_STATE). Likewise a
    static member whose session ran out while Kafka was unreachable is refused on its rejoin as
    if another consumer had its group.instance.id. The errors are the same; what tells them
    apart is how long this worker's transaction was open (`open_s`, None if none was) and
    whether it saw Kafka unreachable lately (core.reach)."""
    if error is None:
        return None
    if open_s is not None and open_s > timeout_s and error.code() in _EXPIRED_TXN_CODES:
        return (f"Kafka aborted its transaction, open {open_s:.0f} s, past transaction.timeout.ms ({timeout_s:g} s"
                + ("; Kafka was unreachable)" if unreachable else "; this process was frozen or starved, or Kafka "
                   "did not answer)"))
    if is_fenced(error) and unreachable:
        return "Kafka gave up on this worker while it was unreachable"
    return None


def kafka_cause(exc: BaseException) -> KafkaException:
    """The KafkaException behind `exc`. After a fatal error (fenced) confluent-kafka still calls
    the producer's on_delivery for the purged records with its KafkaException pending, and the
    callback's first C call turns that into a SystemError caused by it."""
    if isinstance(exc, KafkaException):
        return exc
    if isinstance(exc.__cause__, KafkaException):
        return exc.__cause__
    raise exc


# The longest one wait of send_offsets / commit / abort: librdkafka's default is for ever, and
# a worker waiting for a broker that is down would neither say so nor honour stop(). A call
# that times out goes on in the background and is called again (librdkafka's rule).
TXN_CALL_S = 5.0
# ... but not for ever: a call that has timed out for this long in a row is given up
# (PipelineError: the worker's restart aborts and resumes). A longer outage then costs restarts
# with back-off; a librdkafka stuck in a state where every call times out costs 5 min, not all.
TXN_GIVE_UP_S = 300.0


# librdkafka's max.poll.interval.ms unless the `kafka` passthrough sets it.
_MAX_POLL_INTERVAL_MS = 300000


def poll_budget_s(interval_ms: int | None) -> float:
    """How long one batch's transactional calls may wait for Kafka in all, from the consume() that
    returned the batch: the consumer is not polled while they wait, and librdkafka takes a
    consumer not polled for max.poll.interval.ms out of its group (its partitions go to another
    member; this worker's offsets would then be refused). The waits end 30 s (a quarter of a
    short interval) before that: room for the abort (TXN_CALL_S) and the rewind after them, so
    the worker polls again, or exits and its restart rejoins as the same static member."""
    interval_s = (interval_ms or _MAX_POLL_INTERVAL_MS) / 1000.0
    return interval_s - min(30.0, interval_s / 4.0)


class StoppedWaiting(Exception):
    """stop() came while a transactional call waited for Kafka, which did not answer: the
    transaction is left open, for the slot's next start (or Kafka's transaction timeout) to abort."""


def txn_call(what: str, fn: Callable[..., T], *args: Any, attempts: int = 20,
             stopping: Any = None, unanswered: Callable[[str, float], None] | None = None,
             watch: Any = None, give_up_at: float | None = None) -> T:
    """Call a transactional API, retrying what librdkafka calls retriable.

    A call given a timeout (TXN_CALL_S) that runs out is called again for as long as Kafka
    does not answer, and `unanswered(what, seconds waited)` is told each time (core.reach); StoppedWaiting
    once `stopping` (a threading.Event) is set; `watch` (core.txnwatch.CallWatch) sees each
    call begin and end. Raises AbortRequired when the transaction must be aborted,
    PipelineError when the producer is fenced or hit a fatal error, or when Kafka has not
    answered for TXN_GIVE_UP_S or by `give_up_at` (time.monotonic(); see poll_budget_s).
    """
    attempt = 0
    start = time.monotonic()
    limit = start + TXN_GIVE_UP_S if give_up_at is None else min(start + TXN_GIVE_UP_S, give_up_at)
    while True:
        if watch is not None:
            watch.begin(what)
        try:
            return fn(*args)
        except SystemError as exc:
            raise_txn_error(what, kafka_cause(exc))
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not (isinstance(error, KafkaError) and error.retriable() and not error.fatal()
                    and not error.txn_requires_abort()):
                raise_txn_error(what, exc)
            if error.code() == KafkaError._TIMED_OUT:   # no answer in the call's timeout: wait on
                if unanswered is not None:
                    unanswered(what, time.monotonic() - start)
                if stopping is not None and stopping.is_set():
                    raise StoppedWaiting(f"{what}: {error.str()}") from exc
                now = time.monotonic()
                if now >= limit:
                    why = "" if now - start >= TXN_GIVE_UP_S else (
                        ", and its consumer must poll before max.poll.interval.ms ends or be taken out of the group")
                    raise PipelineError(f"{what}: no answer from Kafka in {now - start:.0f} s{why}") from exc
                time.sleep(0.05)   # never a hot loop, should a call time out at once
                continue
            attempt += 1
            if attempt >= attempts or time.monotonic() >= limit:
                raise_txn_error(what, exc)
            log.warning("%s: retriable error (attempt %d/%d): %s", what, attempt, attempts, error.str())
            time.sleep(min(0.05 * attempt, 1.0))
        finally:
            if watch is not None:
                watch.end()
