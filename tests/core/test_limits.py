"""Output size limits: wire_size is exactly librdkafka's own count, and the smaller of the
producer's and the topic's limit wins."""

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from hypothesis import given, settings, strategies as st

from core.limits import BATCH_OVERHEAD, OutputLimits, limits_from, too_large, wire_size
from core.topics import TopicNames


def _accepts(max_bytes: int, key, value, headers) -> bool:
    # A real client with nothing to connect to: produce() only runs librdkafka's size check.
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "message.max.bytes": max_bytes, "log_level": 0})
    try:
        producer.produce("t", value, key, -1, None, None, 0, headers)
        return True
    except KafkaException as exc:
        assert exc.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
        return False
    finally:
        producer.purge()


@settings(max_examples=80, deadline=None)
@given(key=st.one_of(st.none(), st.binary(max_size=300)),
       value=st.one_of(st.none(), st.binary(max_size=3000)),
       headers=st.one_of(st.none(), st.lists(st.tuples(st.text(min_size=1, max_size=200),
                                                        st.one_of(st.none(), st.binary(max_size=20_000))),
                                              max_size=5)))
def test_wire_size_is_the_exact_bound_librdkafka_checks(key, value, headers):
    size = wire_size(key, value, headers)
    limit = max(size, 1000)   # librdkafka's smallest message.max.bytes is 1000
    assert _accepts(limit, key, value, headers)
    if size > 1000:
        assert not _accepts(size - 1, key, value, headers)


def test_a_topic_limit_below_the_producers_wins_and_caps_the_batch():
    limits = limits_from(1_000_000, 1_000_000, {"s": 1_048_588, "a": 1_048_588, "d": 500_000})
    assert limits.of("s") == 1_000_000 and limits.of("d") == 500_000 - BATCH_OVERHEAD
    assert not limits.checked_here("s") and limits.checked_here("d")
    assert limits.batch_cap == 500_000 - BATCH_OVERHEAD
    default = limits_from(1_000_000, 1_000_000, {"s": 1_048_588, "a": 1_048_588, "d": 1_048_588})
    assert default == OutputLimits(default.by_topic, 1_000_000, None)
    assert not any(default.checked_here(t) for t in "sad")


def test_uniform_limits_and_the_reason_text():
    names = TopicNames()
    limits = OutputLimits.uniform(names, 2_000_000)
    assert limits.of(names.scores) == limits.of("anything") == 2_000_000
    assert too_large("fraud-scores", 1_000_912, 1_000_000) == "output_too_large: fraud-scores 1,000,912 > 1,000,000 bytes"


def test_waiting_for_the_configs_answers_ends_on_stop_or_with_a_timeout():
    import concurrent.futures
    import threading
    import time

    from core.limits import _wait_all

    never = concurrent.futures.Future()
    done = concurrent.futures.Future()
    done.set_result({})
    assert _wait_all([done], 1.0, None) is True
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="no answer in 0.5 s"):
        _wait_all([done, never], 0.5, None)
    assert 0.5 <= time.monotonic() - started < 1.5
    stopping = threading.Event()
    threading.Timer(0.3, stopping.set).start()
    started = time.monotonic()
    assert _wait_all([never], 30.0, stopping) is False
    assert time.monotonic() - started < 1.5
