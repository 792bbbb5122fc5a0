"""What a loop does while Kafka does not answer, without Kafka: when it says Kafka is unreachable
and reachable again (core.reach), how librdkafka's repeated lines are collapsed
(core.rdkafkalog), how a transactional call that times out is waited on and given up at stop()
(core.txn), and how a call that never returns is caught (core.txnwatch)."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import CollectorRegistry

from core.errors import PipelineError
from core.metrics import LoopMetrics, format_stats
from core.rdkafkalog import RepeatFilter
from core.reach import PROBE_S, RECENT_S, UNANSWERED_S, KafkaReach
from core.topicids import flush_and_ask
from core.txn import AbortRequired, StoppedWaiting, expiry, txn_call
from core.txnwatch import OVERDUE_S, CallWatch


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Metadata:
    """A consumer whose list_topics answers or not."""

    def __init__(self):
        self.up = False
        self.asked = 0

    def list_topics(self, topic, timeout):
        self.asked += 1
        if not self.up:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "no broker"))


def _reach():
    clock, gauge = Clock(), []
    return KafkaReach("w-0", gauge.append, clock), clock, gauge


def test_all_brokers_down_is_believed_only_when_a_probe_finds_none(caplog):
    reach, clock, gauge = _reach()
    consumer = Metadata()
    consumer.up = True   # an idle producer lost its connections, the brokers are there
    reach.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    assert reach.probe_due()
    reach.probe(consumer, "t")
    assert not reach.down and gauge == [] and not reach.probe_due()
    assert "unreachable" not in caplog.text


def test_an_outage_is_one_warning_then_one_line_when_a_broker_answers(caplog):
    caplog.set_level(logging.INFO)
    reach, clock, gauge = _reach()
    consumer = Metadata()
    reach.on_error(KafkaError(KafkaError._TRANSPORT, "Connect to ipv4#127.0.0.1:9092 failed: Connection refused"))
    reach.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    for _ in range(5):
        if reach.probe_due():
            reach.probe(consumer, "t")
        clock.t += PROBE_S
    assert reach.down and gauge == [True] and consumer.asked == 5
    assert caplog.text.count("Kafka unreachable") == 1 and "Connection refused" in caplog.text
    consumer.up = True
    clock.t += 40
    assert reach.probe_due()
    reach.probe(consumer, "t")
    assert not reach.down and gauge == [True, False]
    assert "Kafka reachable again after 45 s" in caplog.text
    assert not reach.probe_due()   # nothing is asked while Kafka answers


def test_a_slow_call_is_an_outage_only_after_all_brokers_down_or_30_s():
    reach, clock, gauge = _reach()
    reach.no_answer("commit_transaction", 10.0)   # a coordinator moving to another broker
    reach.flush_waits("flush", 20.0)
    assert not reach.down and gauge == []
    reach.no_answer("commit_transaction", UNANSWERED_S)
    assert reach.down and gauge == [True]
    reach.answered()
    reach.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "down"))
    reach.flush_waits("flush", 2.0)
    assert reach.down and gauge == [True, False, True]
    reach.close()   # a stopped loop no longer counts
    assert gauge == [True, False, True, False]


def test_a_loop_that_saw_kafka_unreachable_remembers_it_for_a_while():
    reach, clock, gauge = _reach()
    assert not reach.unreachable_lately()
    reach.no_answer("commit_transaction", UNANSWERED_S)
    assert reach.unreachable_lately()
    clock.t += 50
    reach.answered()
    assert reach.unreachable_lately()   # back, but a session that ran out meanwhile is refused later
    clock.t += RECENT_S + 1
    assert not reach.unreachable_lately()


_FENCED = KafkaError(KafkaError._FENCED, "transactional producer fenced by newer producer instance", fatal=True)


@pytest.mark.parametrize("error, open_s, unreachable, says", [
    # a transaction open past transaction.timeout.ms (30 s here): Kafka aborted it and bumped the epoch
    (_FENCED, 81.0, True, "Kafka aborted its transaction, open 81 s, past transaction.timeout.ms (30 s; Kafka "
                          "was unreachable)"),
    (_FENCED, 45.0, False, "Kafka aborted its transaction, open 45 s, past transaction.timeout.ms (30 s; this "
                           "process was frozen or starved, or Kafka did not answer)"),
    (KafkaError(KafkaError.INVALID_TXN_STATE, "invalid state", fatal=True), 40.0, True, "Kafka aborted its"),
    # the consumer's session ran out during an outage: its rejoin is refused as a twin's would be
    (KafkaError(KafkaError._FATAL, "Fatal error: Broker: Static consumer fenced by other consumer with same "
                                   "group.instance.id"), None, True, "Kafka gave up on this worker while it was "
                                                                     "unreachable"),
    # a consumer fenced while a transaction was open long: no sign that Kafka aborted it
    (KafkaError(KafkaError._FATAL, "Fatal error: Broker: Static consumer fenced by other consumer with same "
                                   "group.instance.id"), 40.0, False, None),
    # a twin: fenced within the timeout, Kafka reachable all along
    (_FENCED, 2.0, False, None),
    (_FENCED, None, False, None),
    (KafkaError(KafkaError.INVALID_TXN_STATE, "invalid state", fatal=True), 2.0, True, None),
    (KafkaError(KafkaError._MSG_TIMED_OUT, "timed out"), 90.0, True, None),
    (None, 90.0, True, None),
])
def test_fenced_after_kafka_gave_up_on_the_worker_is_not_blamed_on_a_twin(error, open_s, unreachable, says):
    why = expiry(error, open_s, 30.0, unreachable)
    if says is None:
        assert why is None
    else:
        assert why is not None and why.startswith(says), why


def test_the_gauge_counts_loops_and_the_stats_line_says_so():
    metrics = LoopMetrics(CollectorRegistry())
    assert "unreachable" not in format_stats(metrics.snapshot(), metrics.snapshot(), 1.0)
    metrics.set_unreachable(True)
    metrics.set_unreachable(True)
    metrics.set_unreachable(False)
    snap = metrics.snapshot()
    assert snap.kafka_unreachable == 1 and metrics.unreachable._value.get() == 1
    assert format_stats(snap, snap, 1.0).endswith(" | Kafka unreachable from 1 worker(s)")


def _record(text: str) -> logging.LogRecord:
    return logging.LogRecord("core.rdkafka", logging.ERROR, "", 0, "%s [%s] %s",
                             ("FAIL", "rdkafka#consumer-5", text), None)


def test_repeated_librdkafka_lines_pass_once_per_window_with_a_count():
    clock = Clock()
    keep = RepeatFilter(window_s=30.0, clock=clock)
    refused = "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after {}ms in state CONNECT)"
    passed = []
    for i in range(600):   # 20 a second for 30 s, as librdkafka writes them
        record = _record(refused.format(i % 3))
        if keep.filter(record):
            passed.append(record.getMessage())
        clock.t += 0.05
    clock.t = 1030.0   # the window's end (not 600 float additions of 0.05)
    other = _record("Disconnected: connection reset by peer")
    assert keep.filter(other)   # another kind passes at once
    record = _record(refused.format(0))
    assert keep.filter(record)
    assert len(passed) == 1 and "(and 599 more like it in 30 s)" in record.getMessage()


def test_a_timed_out_transactional_call_is_waited_on_until_stop():
    calls, told = [], []
    stopping = threading.Event()

    def commit(timeout):
        calls.append(timeout)
        if len(calls) == 3:
            stopping.set()
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out", retriable=True))

    with pytest.raises(StoppedWaiting):
        txn_call("commit_transaction", commit, 5.0, stopping=stopping, unanswered=lambda w, s: told.append(w))
    # more than librdkafka's retriable attempts would allow is fine while nobody stops it:
    assert calls == [5.0, 5.0, 5.0] and told == ["commit_transaction"] * 3


def test_a_timed_out_call_that_then_succeeds_returns_its_result():
    answers = iter([KafkaException(KafkaError(KafkaError._TIMED_OUT, "t", retriable=True))] * 25 + ["ok"])

    def commit(timeout):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert txn_call("commit_transaction", commit, 5.0, stopping=threading.Event()) == "ok"


def test_a_call_that_never_returns_is_reported_once():
    clock, stuck = Clock(), []
    watch = CallWatch("w-0", lambda what, s: stuck.append((what, s)), stuck_s=60.0, clock=clock)
    # as begin() sets it, without the thread
    watch._call = ("send_offsets_to_transaction", clock(), 8.0, watch.stuck_s)
    clock.t += 59
    watch.check()
    assert stuck == []
    clock.t += 2
    watch.check()
    watch.check()
    assert stuck == [("send_offsets_to_transaction", 61.0)]
    watch.end()
    watch._call = ("commit_transaction", clock(), 8.0, watch.stuck_s)
    clock.t += 5
    watch.check()   # a call that returns in time is nothing
    assert len(stuck) == 1


class WaitingProducer:
    """A producer whose records are never acknowledged (every broker gone)."""

    def flush(self, timeout):
        time.sleep(min(timeout, 0.01))
        return 3


class Guard:
    def __init__(self):
        self.checks = 0

    def changes_if_known(self):
        self.checks += 1
        return []


def test_a_flush_waiting_for_gone_brokers_ends_soon_after_stop():
    stopping, guard, told = threading.Event(), Guard(), []
    stopping.set()
    t0 = time.monotonic()
    with pytest.raises(AbortRequired, match="3 output records unacknowledged"):
        flush_and_ask(WaitingProducer(), guard, 30.0, stopping, 0.2, lambda what, s: told.append(what))
    assert time.monotonic() - t0 < 2.0   # not the 30 s of the transaction timeout
    assert guard.checks == 0 and told and set(told) == {"flush"}
    guard, stopping = Guard(), threading.Event()
    with pytest.raises(AbortRequired):
        flush_and_ask(WaitingProducer(), guard, 5.5, stopping)
    assert guard.checks >= 1   # without a stop, a deleted topic is looked for while records wait


def test_a_flush_asks_for_the_topics_only_while_the_answer_can_come_before_its_deadline(monkeypatch):
    import core.topicids as topicids

    monkeypatch.setattr(topicids, "_REQUEST_TIMEOUT_S", 1.0)   # 5 s in the service

    class SlowGuard(Guard):   # Kafka gone: each question waits for its whole request timeout
        def changes_if_known(self):
            time.sleep(topicids._REQUEST_TIMEOUT_S)
            return super().changes_if_known()

    guard, t0 = SlowGuard(), time.monotonic()
    with pytest.raises(AbortRequired):
        flush_and_ask(WaitingProducer(), guard, 2.5, threading.Event())
    # asked at 0 s and 1 s, not at 2 s: that answer would have kept the flush to 3 s
    assert guard.checks == 2 and time.monotonic() - t0 < 2.9


def test_the_answer_of_the_topic_guard_is_awaited_only_until_the_batch_budget_ends(monkeypatch):
    # Kafka gone: each question of the ids fails after its request timeout, and the answer
    # was asked again for 15 s whatever was left of the batch's poll budget
    import core.topicids as topicids
    from core.topicids import TopicGuard

    class Gone:
        def result(self):
            time.sleep(0.1)   # a request timing out
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out", retriable=True))

    monkeypatch.setattr(topicids, "_admin_client", lambda settings: None)
    guard = TopicGuard({"bootstrap.servers": "127.0.0.1:1"}, ["t"])
    guard.learned = {"t": "id-1"}
    monkeypatch.setattr(guard, "_describe", lambda: {"t": Gone()})
    t0 = time.monotonic()
    answer = guard.ask(answer_by=t0 + 0.5)
    with pytest.raises(KafkaException):
        answer()
    assert 0.5 <= time.monotonic() - t0 < 2.0   # not _ANSWER_WITHIN_S (15 s)


def test_a_call_timing_out_for_minutes_is_given_up(monkeypatch):
    import core.txn as txn

    monkeypatch.setattr(txn, "TXN_GIVE_UP_S", 0.2)   # 5 min in the service

    def commit(timeout):
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out", retriable=True))

    with pytest.raises(txn.PipelineError, match="no answer from Kafka in 0 s"):
        txn_call("commit_transaction", commit, 5.0, stopping=threading.Event())


def test_the_waits_of_one_batch_end_before_its_consumer_would_leave_the_group():
    from core.txn import poll_budget_s

    assert poll_budget_s(None) == 270.0   # librdkafka's max.poll.interval.ms, 300 s, less 30 s
    assert poll_budget_s(300000) == 270.0 and poll_budget_s(600000) == 570.0
    assert poll_budget_s(20000) == 15.0   # a short interval keeps a quarter of it

    def commit(timeout):
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out", retriable=True))

    t0 = time.monotonic()
    with pytest.raises(PipelineError, match=r"commit_transaction: no answer from Kafka in 0 s, and its "
                                            r"consumer must poll before max.poll.interval.ms"):
        txn_call("commit_transaction", commit, 5.0, stopping=threading.Event(), give_up_at=t0 + 0.2)
    assert time.monotonic() - t0 < 2.0   # not TXN_GIVE_UP_S (5 min)


def test_a_scoring_consumer_gives_up_waiting_by_its_own_max_poll_interval(monkeypatch):
    import core.txn as txn
    from core import Scorer, ScoringConfig, ScoringConsumer

    monkeypatch.setattr(txn, "TXN_GIVE_UP_S", 4.0)   # unwired, the test fails in 4 s, not 5 min

    config = ScoringConfig(bootstrap_servers="127.0.0.1:1", kafka={"max.poll.interval.ms": "20000"})
    consumer = ScoringConsumer(config, Scorer.load())
    consumer._polled_at = time.monotonic() - 14.5   # the batch was consumed 14.5 s ago: 0.5 s left
    consumer._producer = type("Producer", (), {"poll": lambda self, timeout: 0})()   # polled on each timeout

    def commit(timeout):
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out", retriable=True))

    t0 = time.monotonic()
    with pytest.raises(PipelineError, match="max.poll.interval.ms"):
        consumer._txn("commit_transaction", commit, 5.0)
    assert 0.3 < time.monotonic() - t0 < 3.0


def test_the_watch_thread_reports_a_call_begun_and_never_ended():
    stuck = threading.Event()
    watch = CallWatch("w-0", lambda what, s: stuck.set(), stuck_s=0.5)
    watch.begin("commit_transaction")
    assert stuck.wait(5.0)   # the thread looks once a second
    seen = threading.Event()
    quick = CallWatch("w-1", lambda what, s: seen.set(), stuck_s=0.5)
    quick.begin("commit_transaction")
    quick.end()
    assert not seen.wait(2.0)


def test_init_transactions_is_watched_and_each_retry_is_a_call_of_its_own():
    from core.workerstart import init_transactions

    release = threading.Event()

    class Producer:
        def __init__(self, hang_on):
            self.calls, self.hang_on = 0, hang_on

        def init_transactions(self, timeout):
            self.calls += 1
            if self.calls == self.hang_on:   # librdkafka blocking past its own timeout
                release.wait(60)
            if self.calls < 3:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out", retriable=True))

        def poll(self, timeout):
            return 0

    clock = Clock()
    seen = []
    # the `hang` fault's short patience (3 s) must not take a slow init_transactions for a stuck one
    watch = CallWatch("w-0", lambda what, s: seen.append((what, s)), stuck_s=3.0, clock=clock)
    init_transactions(Producer(hang_on=0), threading.Event(), "w-0", "b:9092", watch)
    watch.check()
    assert seen == [] and watch._call is None   # three calls, each begun and ended
    stuck = Producer(hang_on=1)
    threading.Thread(target=init_transactions, args=(stuck, threading.Event(), "w-0", "b:9092", watch),
                     daemon=True).start()
    while stuck.calls == 0:
        time.sleep(0.01)
    clock.t += 19   # its own timeout (10 s) and more, but not stuck yet
    watch.check()
    assert seen == []
    clock.t += 2
    watch.check()
    assert seen == [("init_transactions", 21.0)]   # once, whichever thread looked first
    release.set()


def test_a_call_past_its_own_timeout_counts_as_kafka_unreachable_long_before_stuck(caplog):
    # The loop is blocked in the call: the watch thread tells the reach, so /healthz says 503
    # seconds into an outage, not only when the call counts as stuck (20 s) and the worker exits.
    reach, clock, gauge = _reach()
    stuck = []
    watch = CallWatch("w-0", lambda what, s: stuck.append(what), clock=clock, on_overdue=reach.overdue)
    watch._call = ("send_offsets_to_transaction", clock(), 5.0 + OVERDUE_S, watch.stuck_s)   # as begin() sets it
    clock.t += 5.0 + OVERDUE_S - 0.1
    watch.check()
    assert gauge == [] and not reach.down
    clock.t += 0.1
    watch.check()
    watch.check()
    assert gauge == [True] and reach.down and stuck == []
    assert caplog.text.count("Kafka unreachable: send_offsets_to_transaction (for 8 s, past its own timeout)") == 1
    assert reach.probe_due()   # once the call returns, the loop probes, and a broker's answer clears it
    reach.probe(_Up(), "t")
    assert not reach.down and gauge == [True, False]


class _Up:
    def list_topics(self, topic, timeout):
        return None


def test_begin_sets_when_a_call_is_overdue_and_when_stuck():
    clock = Clock()
    watch = CallWatch("w-0", clock=clock, stuck_s=20.0)
    watch.begin("commit_transaction")
    assert watch._call[2:] == (5.0 + OVERDUE_S, 20.0)
    watch.begin("init_transactions", 10.0)
    assert watch._call[2:] == (10.0 + OVERDUE_S, 20.0)
    watch.end()
