"""Dead letters keep the original record, and always fit the producer's size limit."""

from confluent_kafka import KafkaError, KafkaException, Producer
from hypothesis import given, settings, strategies as st

from core.routing import (DEFAULT_MAX_MESSAGE_BYTES, H_HEADERS_DROPPED, H_KEY_TRUNCATED_FROM, H_REASON,
                          H_SOURCE_OFFSET, H_TRUNCATED_FROM, dead_letter)


class _Msg:
    """The accessors of a consumed confluent_kafka.Message that dead_letter reads."""

    def __init__(self, value, key=b"card-1", headers=None):
        self._value, self._key, self._headers = value, key, headers

    def value(self):
        return self._value

    def key(self):
        return self._key

    def headers(self):
        return self._headers

    def topic(self):
        return "transactions"

    def partition(self):
        return 4

    def offset(self):
        return 123_456


def _producer(max_bytes=DEFAULT_MAX_MESSAGE_BYTES):
    # A real client with nothing to connect to: produce() only queues, after librdkafka's own
    # size check against message.max.bytes.
    return Producer({"bootstrap.servers": "127.0.0.1:1", "message.max.bytes": max_bytes, "log_level": 0})


def test_a_small_bad_record_keeps_its_value_and_gains_the_reason():
    key, value, headers = dead_letter(_Msg(b"not json", headers=[("bench", b"x")]), "decode: bad json")
    assert (key, value) == (b"card-1", b"not json")
    assert headers[0] == ("bench", b"x")
    names = dict(headers)
    assert names[H_REASON] == b"decode: bad json" and names[H_SOURCE_OFFSET] == b"123456"
    assert H_TRUNCATED_FROM not in names


def test_a_record_near_the_limit_is_cut_to_fit_and_says_how_long_it_was():
    msg = _Msg(b"x" * 999_950)
    producer = _producer()
    _, whole, untouched = dead_letter(msg, "too large", max_message_bytes=10 ** 9)
    assert whole == msg.value()
    try:
        producer.produce("dlq", whole, msg.key(), headers=untouched)
        raise AssertionError("librdkafka accepted a record over message.max.bytes")
    except KafkaException as exc:
        assert exc.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
    key, value, headers = dead_letter(msg, "too large")
    assert dict(headers)[H_TRUNCATED_FROM] == b"999950" and key == msg.key()
    assert 0 < len(value) < 999_950 and msg.value().startswith(value)
    producer.produce("dlq", value, msg.key(), headers=headers)   # raises if it does not fit
    producer.purge()


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 300_000),
       key=st.one_of(st.none(), st.binary(max_size=200), st.binary(min_size=1).map(lambda b: b * 150_000)),
       extra=st.lists(st.tuples(st.text(min_size=1, max_size=300), st.one_of(st.none(), st.binary(max_size=60_000))),
                      max_size=6),
       limit=st.integers(20_000, 300_000), has_value=st.booleans())
def test_every_dead_letter_fits_the_limit(size, key, extra, limit, has_value):
    # non-ASCII header names (up to 4 bytes a character), keys and headers alone over the limit
    msg = _Msg(b"v" * size if has_value else None, key=key, headers=extra or None)
    out_key, value, headers = dead_letter(msg, "reason", limit)
    producer = _producer(limit)
    producer.produce("dlq", value, out_key, headers=headers)   # raises if it does not fit
    producer.purge()
    marks = dict((k, v) for k, v in headers if k.startswith("fraudstream.deadletter."))
    assert (value == msg.value()) == (H_TRUNCATED_FROM not in marks)
    assert (out_key == key) == (H_KEY_TRUNCATED_FROM not in marks)
    cuts = sum(1 for k in (H_TRUNCATED_FROM, H_HEADERS_DROPPED, H_KEY_TRUNCATED_FROM) if k in marks)
    kept = headers[:len(headers) - 4 - cuts]                # the originals that stayed, in order
    assert headers[len(kept)][0] == H_REASON
    it = iter(extra or [])
    assert all(any(h == e for e in it) for h in kept)       # a subsequence of the originals
    assert (H_HEADERS_DROPPED in marks) == (len(kept) < len(extra or []))
    if H_HEADERS_DROPPED in marks:
        assert int(marks[H_HEADERS_DROPPED]) == len(extra) - len(kept)
    if value is not None:
        assert msg.value().startswith(value)


def test_a_key_too_large_alone_gives_way_to_the_value_and_headers():
    # A value and headers that fit, a key that alone exceeds the limit: the key is cut, the rest
    # (what a replay needs) stays whole.
    msg = _Msg(b"v" * 20_000, key=b"k" * 200_000, headers=[("trace", b"t" * 100)])
    key, value, headers = dead_letter(msg, "reason", 50_000)
    marks = dict(headers)
    assert value == msg.value() and headers[0] == ("trace", b"t" * 100)
    assert marks[H_KEY_TRUNCATED_FROM] == b"200000" and H_TRUNCATED_FROM not in marks
    assert 0 < len(key) < 30_000 and msg.key().startswith(key)
    producer = _producer(50_000)
    producer.produce("dlq", value, key, headers=headers)   # raises if it does not fit
    producer.purge()
