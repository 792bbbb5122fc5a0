"""core.ScoringConsumer, the embeddable loop: a wrong constructor argument is a ConfigError
naming it, at once, not an AttributeError from deep inside run()."""

import pytest

from core import ConfigError, Scorer, ScoringConfig, ScoringConsumer


@pytest.fixture(scope="module")
def scorer():
    return Scorer.load()


@pytest.mark.parametrize("config, needle", [
    (None, "config: expected a core.ScoringConfig, got NoneType"),
    ({"bootstrap_servers": "kafka:9092"}, "config: expected a core.ScoringConfig, got dict"),
])
def test_config_must_be_a_scoring_config(scorer, config, needle):
    with pytest.raises(ConfigError, match=needle):
        ScoringConsumer(config, scorer)


@pytest.mark.parametrize("bad", [None, "models/fraud-model.meta.json"])
def test_scorer_must_be_a_scorer(bad):
    with pytest.raises(ConfigError, match=r"scorer: expected a core.Scorer \(Scorer.load\(\)\)"):
        ScoringConsumer(ScoringConfig(), bad)


@pytest.mark.parametrize("slot", [-1, "0", 1.5, True])
def test_slot_must_be_a_non_negative_int(scorer, slot):
    with pytest.raises(ConfigError, match="slot: expected an int >= 0"):
        ScoringConsumer(ScoringConfig(), scorer, slot=slot)


def test_good_arguments_make_a_consumer_that_names_its_slot(scorer):
    consumer = ScoringConsumer(ScoringConfig(group_id="g", transactional_id_prefix="p"), scorer, slot=3)
    assert consumer.name == "p-3"


@pytest.mark.parametrize("kafka, needle", [
    ({"no.such.key": "1"}, 'No such configuration property: "no.such.key"'),
    ({"linger.ms": "abc"}, "Invalid value for configuration property"),
])
def test_a_kafka_setting_librdkafka_refuses_is_a_config_error_before_connecting(scorer, kafka, needle):
    # port 1: nothing listens, so a ConfigError (not a 15 s wait for Kafka) shows nothing connected
    consumer = ScoringConsumer(ScoringConfig(bootstrap_servers="127.0.0.1:1", kafka=kafka), scorer)
    with pytest.raises(ConfigError, match=needle):
        consumer.run()


def test_stop_is_honoured_while_kafka_does_not_answer(scorer):
    import threading
    import time

    consumer = ScoringConsumer(ScoringConfig(bootstrap_servers="127.0.0.1:1"), scorer)
    threading.Timer(0.5, consumer.stop).start()
    started = time.monotonic()
    consumer.run()   # returns, no error: it was stopped before it started
    assert time.monotonic() - started < 5.0   # the wait for the topics' configs is 15 s
