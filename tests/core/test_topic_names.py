"""A namespace prefixes the four topic names, and must make valid Kafka topic names."""

import pytest

from core.errors import ConfigError
from core.topics import TopicNames


def test_a_namespace_prefixes_all_four_names():
    names = TopicNames.namespaced("bench.run.orchestrate-1_a")
    assert names.all() == ("bench.run.orchestrate-1_a.transactions", "bench.run.orchestrate-1_a.fraud-scores",
                           "bench.run.orchestrate-1_a.fraud-alerts", "bench.run.orchestrate-1_a.fraud-deadletter")
    assert TopicNames.namespaced("") == TopicNames()


@pytest.mark.parametrize("namespace", ["bad name", "a/b", "ünï", "x" * 233])
def test_a_namespace_kafka_would_refuse_is_one_clear_error(namespace):
    with pytest.raises(ConfigError, match="would make invalid topic names"):
        TopicNames.namespaced(namespace)


def test_the_longest_namespace_still_fits_kafkas_249_characters():
    assert max(len(n) for n in TopicNames.namespaced("x" * 232).all()) == 249
