"""produce_outputs: an input whose scored event or alert would not fit its topic becomes one
dead letter with the reason, its other outputs are not produced, and the rest of the batch is
untouched. The producer is a real librdkafka client with no broker (produce() runs its own
size check and queues), wrapped to record what was queued."""

from confluent_kafka import Message, Producer

from core.limits import OutputLimits, limits_from
from core.routing import H_HEADERS_DROPPED, H_KEY_TRUNCATED_FROM, H_REASON, H_SOURCE_OFFSET, produce_outputs
from core.scorer import BatchResult
from core.topics import TopicNames

NAMES = TopicNames()
BIG = 1_000_500


class Recording:
    """A real Producer whose successful produce() calls are remembered."""

    def __init__(self, max_bytes: int = 1_000_000):
        self.real = Producer({"bootstrap.servers": "127.0.0.1:1", "message.max.bytes": max_bytes, "log_level": 0})
        self.queued: list[tuple[str, bytes, bytes, list]] = []

    def produce(self, topic, value, key, partition, cb, on_delivery, ts, headers):
        self.real.produce(topic, value, key, partition, cb, on_delivery, ts, headers)
        self.queued.append((topic, value, key, headers))

    def poll(self, timeout):
        return self.real.poll(timeout)

    def to(self, topic):
        return [q for q in self.queued if q[0] == topic]


def _msg(i, value=b'{"transaction_id":"t"}', key=b"card", headers=None):
    return Message(topic="transactions", partition=i % 3, offset=100 + i, key=key, value=value,
                   headers=headers or [("seq", str(i).encode())])


def _result(msgs, alerts=(), dead=()):
    scored = [(i, m.value()[:-1] + b',"fraud_score":0.5}') for i, m in enumerate(msgs) if i not in dict(dead)]
    return BatchResult(scored, [(i, b'{"alert_id":"a"}') for i in alerts], list(dead), None)


def test_a_huge_header_or_key_makes_one_dead_letter_and_the_batch_goes_on():
    msgs = [_msg(i) for i in range(6)]
    msgs[1] = _msg(1, headers=[("seq", b"1"), ("big", b"h" * BIG)])
    msgs[4] = _msg(4, key=b"k" * BIG)
    producer = Recording()
    diverted = produce_outputs(producer, NAMES, msgs, _result(msgs, alerts=(1, 2)), OutputLimits.uniform(NAMES))
    assert sorted(diverted) == [1, 4]
    # input 1 is flagged: its alert, measured before anything is produced, is already too large
    assert diverted[1].startswith("output_too_large: fraud-alerts 1,000,5") and diverted[1].endswith(" > 1,000,000 bytes")
    assert diverted[4].startswith("output_too_large: fraud-scores 1,000,5") and diverted[4].endswith(" > 1,000,000 bytes")
    assert [q[1] for q in producer.to(NAMES.scores)] == [v for i, v in _result(msgs).scored if i not in (1, 4)]
    assert len(producer.to(NAMES.alerts)) == 1          # input 2's; input 1's went with its scored event
    dead = {dict(h)[H_SOURCE_OFFSET]: (k, v, dict(h)) for _, v, k, h in producer.to(NAMES.deadletter)}
    assert sorted(dead) == [b"101", b"104"]
    key, value, h = dead[b"101"]
    assert value == msgs[1].value() and key == b"card" and h[H_HEADERS_DROPPED] == b"1" and h["seq"] == b"1"
    assert h[H_REASON].decode() == diverted[1]
    key, value, h = dead[b"104"]
    assert value == msgs[4].value() and h[H_KEY_TRUNCATED_FROM] == str(BIG).encode() and h["seq"] == b"4"


def test_an_alert_too_large_for_its_topic_diverts_the_input_before_anything_is_produced():
    msgs = [_msg(i) for i in range(3)]
    limits = limits_from(1_000_000, 1_000_000, {NAMES.scores: 1_048_588, NAMES.alerts: 1000, NAMES.deadletter: 1_048_588})
    big_alert = [(2, b'{"alert_id":"' + b"a" * 2000 + b'"}')]
    result = BatchResult(_result(msgs).scored, big_alert, [], None)
    producer = Recording()
    diverted = produce_outputs(producer, NAMES, msgs, result, limits)
    assert list(diverted) == [2] and diverted[2].startswith(f"output_too_large: {NAMES.alerts} 2,0")
    assert [q[1] for q in producer.to(NAMES.scores)] == [v for i, v in result.scored if i != 2]
    assert producer.to(NAMES.alerts) == [] and len(producer.to(NAMES.deadletter)) == 1


def test_a_topic_smaller_than_the_producer_is_checked_in_python_and_dead_letters_fit_it():
    msgs = [_msg(i) for i in range(4)]
    msgs[3] = _msg(3, value=b'{"transaction_id":"' + b"x" * 300_000 + b'"}')
    limits = limits_from(1_000_000, 1_000_000, {NAMES.scores: 200_000, NAMES.alerts: 1_048_588,
                                                NAMES.deadletter: 100_000})
    producer = Recording()
    diverted = produce_outputs(producer, NAMES, msgs, _result(msgs, dead=[(0, "decode: bad")]), limits)
    assert list(diverted) == [3] and f"> {200_000 - 61:,} bytes" in diverted[3]
    dead = producer.to(NAMES.deadletter)
    assert len(dead) == 2 and len(producer.to(NAMES.scores)) == 2
    from core.limits import wire_size
    assert all(wire_size(k, v, h) <= limits.of(NAMES.deadletter) for _, v, k, h in dead)


def test_diverted_inputs_are_dead_letters_with_the_given_reason_unless_already_bad():
    msgs = [_msg(i) for i in range(4)]
    producer = Recording()
    result = _result(msgs, alerts=(2,), dead=[(0, "decode: bad")])
    diverted = produce_outputs(producer, NAMES, msgs, result, None, {0: "produce_failed: x", 2: "produce_failed: y"})
    assert diverted == {2: "produce_failed: y"}
    reasons = sorted(dict(h)[H_REASON] for _, _, _, h in producer.to(NAMES.deadletter))
    assert reasons == [b"decode: bad", b"produce_failed: y"]
    assert len(producer.to(NAMES.scores)) == 2 and producer.to(NAMES.alerts) == []
