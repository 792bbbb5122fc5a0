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


def test_integer_settings_are_read_as_librdkafka_reads_them():
    """librdkafka takes "60000ms", "0x7530" or "60000.0" for an integer (C strtol, base 0; it
    refuses transaction.timeout.ms=01000 as "value 512"): int() raised on them, a traceback in
    the pre-flight and a worker crashing at every restart."""
    from core.config import kafka_int

    assert [kafka_int(v) for v in ("30000", "60000ms", "0x7530", "60000.0", "01000", " -5", "0x")] == [
        30000, 60000, 30000, 60000, 512, -5, 0]
    assert kafka_int("abc") is None and kafka_int("") is None


def test_client_settings_are_judged_without_connecting():
    # every ScoringConsumer.run() judges them: no connection (TLS, SASL, token fetch) for that
    import socket

    import pytest

    from core.config import ScoringConfig
    from core.errors import ConfigError
    from core.preflight import check_client_settings

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(1.5)
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        check_client_settings(ScoringConfig(bootstrap_servers=address))
        with pytest.raises(ConfigError, match='No such configuration property: "no.such.key"'):
            check_client_settings(ScoringConfig(bootstrap_servers=address, kafka={"no.such.key": "1"}))
        with pytest.raises(socket.timeout):
            listener.accept()
