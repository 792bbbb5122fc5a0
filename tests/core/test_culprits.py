"""The delivery-report policy: which inputs a permanent per-record produce error names, and how
the loop isolates them (without Kafka: the reports are built as librdkafka delivers them)."""

from confluent_kafka import KafkaError, Message

from core.culprits import Culprits
from core.scorer import BatchResult
from core.topics import TopicNames

NAMES = TopicNames()


def _msgs(n, partition=0):
    return [Message(topic="transactions", partition=partition, offset=10 + i, key=b"k",
                    value=b'{"i":%d}' % i, headers=[("h", b"v")]) for i in range(n)]


def _result(msgs):
    scored = [(i, m.value()[:-1] + b',"fraud_score":0.1}') for i, m in enumerate(msgs)]
    return BatchResult(scored, [(1, b'{"alert":1}')], [], None)


def _report(c, code, topic, value):
    c.on_delivery(KafkaError(code), Message(topic=topic, value=value))


def test_one_refused_record_is_quarantined_and_becomes_a_dead_letter_next_time():
    msgs, c = _msgs(5), Culprits()
    result = _result(msgs)
    _report(c, KafkaError.INVALID_RECORD, NAMES.scores, result.scored[3][1])
    text, progress = c.after_abort(NAMES, msgs, result)
    assert progress and "transactions[0]@13" in text
    assert c.divert(msgs) == {3: f"produce_failed: {NAMES.scores}: INVALID_RECORD"}
    assert c.divert(_msgs(3)) == {}          # a batch ending before it
    c.committed(msgs)
    assert not c.active() and c.divert(msgs) == {}


def test_an_alert_refused_for_its_size_names_the_size():
    msgs, c = _msgs(3), Culprits()
    _report(c, KafkaError.MSG_SIZE_TOO_LARGE, NAMES.alerts, b'{"alert":1}')
    _, progress = c.after_abort(NAMES, msgs, _result(msgs))
    assert progress and c.divert(msgs)[1].startswith(f"output_too_large: {NAMES.alerts} ")


def test_a_rejected_batch_makes_suspects_that_are_retried_each_alone():
    msgs, c = _msgs(6), Culprits()
    result = _result(msgs)
    for i in (1, 2, 4):
        _report(c, KafkaError.MSG_SIZE_TOO_LARGE, NAMES.scores, result.scored[i][1])
    _report(c, KafkaError._PURGE_QUEUE, NAMES.scores, result.scored[5][1])   # what the abort purged
    text, progress = c.after_abort(NAMES, msgs, result)
    assert not progress and "3 records" in text and c.divert(msgs) == {}
    pieces = c.pieces(msgs)
    assert [[m.offset() for m in p] for p in pieces] == [[10], [11], [12], [13], [14], [15]]
    assert c.has_suspects(msgs) and not c.has_suspects(msgs[5:])
    c.committed(msgs[:2])
    assert [[m.offset() for m in p] for p in c.pieces(msgs)] == [[10, 11], [12], [13], [14], [15]]


def test_transient_or_unmappable_failures_are_ordinary_aborts():
    msgs, c = _msgs(3), Culprits()
    result = _result(msgs)
    _report(c, KafkaError._MSG_TIMED_OUT, NAMES.scores, result.scored[0][1])
    assert c.after_abort(NAMES, msgs, result) == (None, False)
    _report(c, KafkaError.INVALID_RECORD, NAMES.deadletter, b"whatever")   # a dead letter refused
    assert c.after_abort(NAMES, msgs, result) == (None, False)
    assert c.after_abort(NAMES, msgs, result) == (None, False)             # no reports at all
    assert not c.active()
