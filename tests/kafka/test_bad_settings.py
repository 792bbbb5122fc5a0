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

