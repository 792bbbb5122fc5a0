"""How the scoring loop classifies the errors of a Kafka transaction."""

import pytest
from confluent_kafka import KafkaError, KafkaException

from core.errors import PipelineError
from core.txn import AbortRequired, raise_produce_error


def _exc(code, **flags):
    return KafkaException(KafkaError(code, "test", **flags))


def test_a_produce_refused_because_the_transaction_failed_aborts_and_retries():
    # librdkafka flags this _STATE error neither retriable nor abortable.
    with pytest.raises(AbortRequired):
        raise_produce_error(_exc(KafkaError._STATE))


@pytest.mark.parametrize("exc", [_exc(KafkaError._FENCED), _exc(KafkaError.PRODUCER_FENCED),
                                 _exc(KafkaError._STATE, fatal=True)])
def test_a_fenced_or_fatal_producer_ends_the_worker(exc):
    with pytest.raises(PipelineError):
        raise_produce_error(exc)
