"""librdkafka settings that only the broker can judge, as a user meets them on a real broker:
`python -m core -X ...` stops at start-up with one error line naming the setting and what to
do, instead of restarting its workers forever (a transaction timeout above the broker's
maximum) or joining the group every 2 s for ever with a warning (a session timeout outside
the broker's range)."""

from __future__ import annotations

import uuid

import pytest

from tests.kafka.eos_harness import Service, finish, one_error_line

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def _service(kafka_bootstrap, fresh_topics, tmp_path, tag: str, *settings: str) -> Service:
    names = fresh_topics(tag)
    extra = tuple(arg for s in settings for arg in ("-X", s))
    return Service(kafka_bootstrap, names, f"{tag}-{uuid.uuid4().hex[:6]}", tmp_path, workers=1, extra=extra)


def test_a_transaction_timeout_above_the_brokers_maximum_is_one_error_line(kafka_bootstrap, fresh_topics,
                                                                          tmp_path):
    """Before: init_transactions' fatal INVALID_TRANSACTION_TIMEOUT was a run-time Kafka error,
    and the supervisor restarted the worker for ever (7 times in 25 s, then every 30 s); then
    a worker stopped on it after librdkafka's TXNERR and FATAL lines. The pre-flight reads the
    broker's maximum before any worker starts."""
    svc = _service(kafka_bootstrap, fresh_topics, tmp_path, "txn-timeout", "transaction.timeout.ms=999999999")
    assert one_error_line(svc) == ("error: kafka.transaction.timeout.ms=999999999: the broker accepts at most "
                                   "900000 (its transaction.max.timeout.ms): lower it")
    log = svc.log_path.read_text()
    assert "worker 0 started" not in log and "TXNERR" not in log, svc.tail()


def test_a_session_timeout_outside_the_brokers_range_is_one_error_line(kafka_bootstrap, fresh_topics, tmp_path):
    """Before: every worker reported ready, then logged `JoinGroup failed: Broker: Invalid
    session timeout` every 2 s, scoring nothing, for as long as it ran."""
    svc = _service(kafka_bootstrap, fresh_topics, tmp_path, "session-timeout", "session.timeout.ms=1000")
    assert one_error_line(svc) == ("error: kafka.session.timeout.ms=1000: the broker accepts 6000..1800000 (its "
                                   "group.min.session.timeout.ms and group.max.session.timeout.ms)")



def test_integer_settings_librdkafka_accepts_in_any_form_do_not_crash_a_worker(kafka_bootstrap, fresh_topics,
                                                                                tmp_path):
    """librdkafka reads "0x7530" as 30000 and "1048576b" as 1048576 (C strtol); the loop's own
    int() raised on them, and the supervisor restarted the crashed worker for ever."""
    import time

    svc = _service(kafka_bootstrap, fresh_topics, tmp_path, "int-forms", "transaction.timeout.ms=0x7530",
                   "message.max.bytes=1048576b")
    try:
        deadline = time.monotonic() + 60
        while "assigned [0, 1, 2, 3, 4, 5]" not in svc.log_path.read_text():
            assert svc.proc.poll() is None and time.monotonic() < deadline, svc.tail()
            time.sleep(0.2)
        assert svc.stop() == 0, svc.tail()
    finally:
        finish(None, svc)
    log = svc.log_path.read_text()
    assert "Traceback" not in log and "restarting" not in log, svc.tail()


def _embedded_refusal(kafka_bootstrap, fresh_topics, tag: str, kafka: dict[str, str]) -> BaseException:
    """What an embedded ScoringConsumer with these librdkafka settings raises within 60 s."""
    import threading

    from prometheus_client import CollectorRegistry

    from core.config import ScoringConfig
    from core.loop import ScoringConsumer
    from core.metrics import LoopMetrics
    from core.paths import stateless_model_path
    from core.scorer import Scorer

    names = fresh_topics(tag)
    group = f"{tag}-{uuid.uuid4().hex[:6]}"
    config = ScoringConfig(bootstrap_servers=kafka_bootstrap, topics=names, group_id=group, state=False,
                           stats_interval_s=0, kafka=kafka)
    consumer = ScoringConsumer(config, Scorer.load(stateless_model_path()),
                               metrics=LoopMetrics(registry=CollectorRegistry()))
    raised: list[BaseException] = []

    def run():
        try:
            consumer.run()
        except BaseException as exc:  # noqa: BLE001 - asserted below
            raised.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    runner.join(60)
    if runner.is_alive():
        consumer.stop()
        runner.join(30)
    assert raised, "no error within 60 s"
    return raised[0]


@pytest.mark.parametrize("key, value", [("session.timeout.ms", "1000"), ("transaction.timeout.ms", "999999999")])
def test_an_embedded_consumer_meets_a_refused_timeout_itself(kafka_bootstrap, fresh_topics, key, value):
    """No pre-flight runs here (as in a service that may not read the broker's configs): the
    worker itself must stop with SettingRefused, whose exit code the supervisor never restarts
    (tests/core/test_supervisor_policy.py), instead of joining and failing every 2 s or being
    restarted on init_transactions' fatal error."""
    from core.errors import SettingRefused
    from core.slots import EXIT_SETTING
    from core.worker import exit_code_for

    raised = _embedded_refusal(kafka_bootstrap, fresh_topics, "embedded-" + key.split(".")[0], {key: value})
    assert isinstance(raised, SettingRefused), raised
    assert f"kafka.{key}: the broker at" in str(raised)
    assert exit_code_for(raised) == EXIT_SETTING
