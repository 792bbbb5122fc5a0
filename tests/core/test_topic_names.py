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


def test_the_create_hint_names_the_namespace():
    """`python -m core --namespace run42` without its topics said `bench topics create`, which
    makes the un-namespaced ones."""
    assert TopicNames().create_hint() == "create them with `bench topics create`"
    assert TopicNames.namespaced("run42").create_hint() == "create them with `bench topics create --namespace run42`"
    assert TopicNames(transactions="in").create_hint() == "create them, or name existing ones in the config's topics"
    assert TopicNames(transactions="a/b.transactions").create_hint().startswith("create them, or")


@pytest.mark.parametrize("topics, needle", [
    ({"transactions": ""}, r"topics.transactions: '' is not a Kafka topic name"),
    ({"alerts": "a b/c"}, r"topics.alerts: 'a b/c' is not a Kafka topic name"),
    ({"state": ".."}, r"topics.state: '..' is not a Kafka topic name"),
    ({"scores": "transactions"}, r"topics.transactions and topics.scores are both 'transactions'"),
    ({"state": "fraud-alerts"}, r"topics.alerts and topics.state are both 'fraud-alerts': state needs"),
])
def test_topic_names_kafka_refuses_or_one_topic_twice_are_config_errors(topics, needle):
    from core import ConfigError, ScoringConfig
    from core.config import load_config

    with pytest.raises(ConfigError, match=needle):
        ScoringConfig(topics=TopicNames(**topics))
    with pytest.raises(ConfigError, match=needle):   # from a config file's or the CLI's values
        load_config(None, topics=topics)


def test_the_default_and_namespaced_names_are_fine_and_outputs_may_share_a_topic():
    assert TopicNames().problem() is None and TopicNames.namespaced("x" * 232).problem() is None
    assert TopicNames(alerts="fraud-events", deadletter="fraud-events").problem() is None


def test_the_state_topic_is_judged_only_with_state_on():
    from core import ScoringConfig

    assert ScoringConfig(state=False, topics=TopicNames(state="")).topics.state == ""
    assert ScoringConfig(state=False, topics=TopicNames(state="fraud-scores")).state is False
