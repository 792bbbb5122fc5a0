"""librdkafka settings that only the broker can judge, as a user meets them on a real broker:
`python -m core -X ...` stops at start-up with one error line naming the setting and what to
do, instead of restarting its workers forever (a transaction timeout above the broker's
maximum) or joining the group every 2 s for ever with a warning (a session timeout outside
the broker's range)."""

from __future__ import annotations

import uuid

import pytest

from tests.kafka.eos_harness import Service, one_error_line

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def _service(kafka_bootstrap, fresh_topics, tmp_path, tag: str, *settings: str) -> Service:
    names = fresh_topics(tag)
    extra = tuple(arg for s in settings for arg in ("-X", s))
    return Service(kafka_bootstrap, names, f"{tag}-{uuid.uuid4().hex[:6]}", tmp_path, workers=1, extra=extra)


def test_a_transaction_timeout_above_the_brokers_maximum_is_one_error_line(kafka_bootstrap, fresh_topics,
                                                                          tmp_path):
    """Before: init_transactions' fatal INVALID_TRANSACTION_TIMEOUT was a run-time Kafka error,
    and the supervisor restarted the worker for ever (7 times in 25 s, then every 30 s)."""
    svc = _service(kafka_bootstrap, fresh_topics, tmp_path, "txn-timeout", "transaction.timeout.ms=999999999")
    error = one_error_line(svc)
    assert error.startswith("error: kafka.transaction.timeout.ms: the broker at ") and "lower it" in error


def test_a_session_timeout_outside_the_brokers_range_is_one_error_line(kafka_bootstrap, fresh_topics, tmp_path):
    """Before: every worker reported ready, then logged `JoinGroup failed: Broker: Invalid
    session timeout` every 2 s, scoring nothing, for as long as it ran."""
    svc = _service(kafka_bootstrap, fresh_topics, tmp_path, "session-timeout", "session.timeout.ms=1000")
    assert one_error_line(svc) == ("error: kafka.session.timeout.ms=1000: the broker accepts 6000..1800000 (its "
                                   "group.min.session.timeout.ms and group.max.session.timeout.ms)")



def test_an_embedded_consumer_meets_the_refused_session_timeout_in_the_group_join(kafka_bootstrap, fresh_topics):
    """No pre-flight runs here (as in a service that may not read the broker's configs): the
    worker itself must stop with SettingRefused, whose exit code the supervisor never restarts
    (tests/core/test_supervisor_policy.py), instead of joining and failing every 2 s."""
    import threading

    from prometheus_client import CollectorRegistry

    from core.config import ScoringConfig
    from core.errors import SettingRefused
    from core.loop import ScoringConsumer
    from core.metrics import LoopMetrics
    from core.paths import stateless_model_path
    from core.scorer import Scorer
    from core.slots import EXIT_SETTING
    from core.worker import exit_code_for

    names = fresh_topics("embedded-session")
    group = f"embedded-session-{uuid.uuid4().hex[:6]}"
    config = ScoringConfig(bootstrap_servers=kafka_bootstrap, topics=names, group_id=group, state=False,
                           stats_interval_s=0, kafka={"session.timeout.ms": "1000"})
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
    assert raised and isinstance(raised[0], SettingRefused), raised
    assert "kafka.session.timeout.ms: the broker at" in str(raised[0])
    assert exit_code_for(raised[0]) == EXIT_SETTING
