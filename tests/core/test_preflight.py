"""The service's start-up checks that are pure functions of what the broker says."""

from core.preflight import session_timeout_problem, transaction_timeout_problem


def test_session_timeout_problem_reads_the_brokers_range():
    assert session_timeout_problem(30_000, {}) is None
    assert session_timeout_problem(6_000, {"group.min.session.timeout.ms": "6000"}) is None
    assert "accepts 10000..20000" in session_timeout_problem(30_000, {"group.min.session.timeout.ms": "10000",
                                                                      "group.max.session.timeout.ms": "20000"})
    assert session_timeout_problem(5_999, {}).startswith("kafka.session.timeout.ms=5999: the broker accepts 6000..")


def test_transaction_timeout_problem_reads_the_brokers_maximum():
    assert transaction_timeout_problem(30_000, {}) is None
    assert transaction_timeout_problem(900_000, {}) is None   # the broker's default maximum, 15 min
    assert transaction_timeout_problem(900_001, {}).startswith(
        "kafka.transaction.timeout.ms=900001: the broker accepts at most 900000 (its transaction.max.timeout.ms)")
    assert "at most 60000" in transaction_timeout_problem(60_001, {"transaction.max.timeout.ms": "60000"})
