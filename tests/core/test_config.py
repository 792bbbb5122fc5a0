"""ScoringConfig: validation names the field, secrets never leak, YAML and flags load."""

import re

import pytest
from hypothesis import given, settings, strategies as st

from core.config import RESERVED_KAFKA_KEYS, ScoringConfig, load_config, redact
from core.errors import ConfigError
from core.service import build_config
from core.txn import consumer_settings, producer_settings, worker_id

SECRETS = {
    "sasl.password": "hunter2-sasl",
    "ssl.key.password": "hunter2-keypass",
    "ssl.keystore.password": "hunter2-keystore",
    "ssl.key.pem": "-----BEGIN PRIVATE KEY-----hunter2-pem",
    "sasl.oauthbearer.client.secret": "hunter2-oauth",
    "sasl.oauthbearer.config": "principal=x secret=hunter2-cfg",
}


def test_defaults_are_valid():
    cfg = ScoringConfig()
    assert cfg.exactly_once and cfg.batch_max_records >= 1
    assert cfg.topics.transactions == "transactions"


@pytest.mark.parametrize("field, value, needle", [
    ("batch_max_records", 0, "batch_max_records"),
    ("batch_max_records", 1_000_000, "batch_max_records"),
    ("batch_max_wait_ms", -1, "batch_max_wait_ms"),
    ("metrics_port", 70_000, "metrics_port"),
    ("exactly_once", "maybe", "exactly_once"),
    ("stats_interval_s", -1.0, "stats_interval_s"),
    ("offset_reset", "smallest", "offset_reset"),
    ("topic_guard", "maybe", "topic_guard"),
])
def test_out_of_range_names_the_field(field, value, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(**{field: value})


def test_topic_guard_is_on_unless_turned_off():
    assert load_config().topic_guard
    assert not load_config(topic_guard=False).topic_guard


def test_unknown_field_is_an_error():
    with pytest.raises(ConfigError, match="batch_size"):
        load_config(batch_size=10)


@pytest.mark.parametrize("key", sorted(RESERVED_KAFKA_KEYS))
def test_reserved_kafka_keys_refused(key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        ScoringConfig(kafka={key: "x"})


def test_secrets_never_in_repr_str_or_redacted():
    cfg = ScoringConfig(kafka={**SECRETS, "security.protocol": "SASL_SSL", "sasl.username": "alice"})
    for text in (repr(cfg), str(cfg), str(cfg.redacted()), f"{cfg}", f"{cfg!r}"):
        assert "hunter2" not in text
        assert "SASL_SSL" in text and "alice" in text
    # the real values still reach librdkafka
    assert producer_settings(cfg, 0)["sasl.password"] == "hunter2-sasl"
    assert consumer_settings(cfg, 0)["ssl.key.password"] == "hunter2-keypass"


@settings(deadline=None, max_examples=200)
@given(st.dictionaries(st.sampled_from(sorted(SECRETS)), st.text(min_size=6, alphabet="abcdefXYZ0123")))
def test_redact_hides_every_secret_value(secrets):
    out = redact(secrets)
    assert set(out) == set(secrets)
    assert all(v == "***" for v in out.values())


def test_yaml_with_namespace_and_int_kafka_values(tmp_path):
    path = tmp_path / "svc.yaml"
    path.write_text("group_id: g1\nbatch_max_records: 123\nkafka:\n  linger.ms: 7\n  socket.nagle.disable: true\n")
    cfg = load_config(path, namespace="ns", batch_max_wait_ms=9)
    assert cfg.group_id == "g1" and cfg.batch_max_records == 123 and cfg.batch_max_wait_ms == 9
    assert cfg.kafka == {"linger.ms": "7", "socket.nagle.disable": "true"}
    assert cfg.topics.transactions == "ns.transactions" and cfg.topics.deadletter == "ns.fraud-deadletter"


def test_an_empty_namespace_is_refused_not_taken_for_the_default_topics():
    """`python -m core --namespace "$NS"` with NS unset scored the un-namespaced topics."""
    for empty in ("", "  "):
        with pytest.raises(ConfigError, match="^namespace: empty; leave it out for the default topics$"):
            load_config(namespace=empty)
    assert load_config().topics.transactions == "transactions"


def test_yaml_typo_is_an_error(tmp_path):
    path = tmp_path / "svc.yaml"
    path.write_text("batch_max_record: 10\n")
    with pytest.raises(ConfigError, match="batch_max_record"):
        load_config(path)


def test_a_binary_config_file_is_one_line(tmp_path):
    """It was a UnicodeDecodeError traceback."""
    path = tmp_path / "svc.yaml"
    path.write_bytes(b"batch_max_records: 5\n\xff\xfe\x00")
    with pytest.raises(ConfigError, match=rf"^config {re.escape(str(path))} is not UTF-8 text \(byte 21\)"):
        load_config(path)


def test_cli_pairs_and_bad_pair():
    cfg = build_config(kafka_pairs=("security.protocol=SSL", "ssl.ca.location=/x=y"))
    assert cfg.kafka == {"security.protocol": "SSL", "ssl.ca.location": "/x=y"}
    with pytest.raises(ConfigError, match="key=value"):
        build_config(kafka_pairs=("nonsense",))


def test_offset_reset_is_a_field_not_a_passthrough_key():
    with pytest.raises(ConfigError, match="use the ScoringConfig field offset_reset"):
        ScoringConfig(kafka={"auto.offset.reset": "earliest"})
    assert consumer_settings(ScoringConfig(), 0)["auto.offset.reset"] == "error"   # core.offsets decides
    for choice in ("earliest", "latest"):
        assert consumer_settings(load_config(offset_reset=choice), 0)["auto.offset.reset"] == choice


def test_worker_identity_is_stable_per_slot_and_settings_enforce_eos():
    cfg = ScoringConfig(group_id="g", transactional_id_prefix="p")
    assert worker_id(cfg, 3) == "p-3" == worker_id(cfg.replace(batch_max_records=5), 3)
    prod, cons = producer_settings(cfg, 3), consumer_settings(cfg, 3)
    assert prod["transactional.id"] == "p-3" and cons["group.instance.id"] == "p-3"
    assert cons["enable.auto.commit"] == "false" and cons["isolation.level"] == "read_committed"
    alo = producer_settings(cfg.replace(exactly_once=False), 3)
    assert "transactional.id" not in alo
    alo = consumer_settings(cfg.replace(exactly_once=False), 3)
    assert alo["enable.auto.commit"] == "true" and alo["enable.auto.offset.store"] == "false"


def test_replace_validates_again():
    with pytest.raises(ConfigError):
        ScoringConfig().replace(batch_max_records=0)


def test_no_state_picks_the_stateless_model_unless_one_is_named(monkeypatch):
    from core.paths import stateless_model_path

    monkeypatch.delenv("FRAUDSTREAM_MODEL", raising=False)
    assert build_config(state=False).model_path == str(stateless_model_path())
    assert build_config().model_path is None   # state on: the committed default model
    assert build_config(state=False, model_path="mine.meta.json").model_path == "mine.meta.json"
    monkeypatch.setenv("FRAUDSTREAM_MODEL", "env.meta.json")
    assert build_config(state=False).model_path is None   # Scorer.load() reads the env


@pytest.mark.parametrize("changes, needle", [
    ({"batch_max_records": 0}, "batch_max_records: Expected `int` >= 1"),
    ({"batch_max_wait_ms": "25"}, "batch_max_wait_ms: Expected `int`, got `str`"),
    ({"state_snapshot_s": float("nan")}, "state_snapshot_s"),
    ({"offset_reset": "smallest"}, "offset_reset"),
    ({"instance_id": "a/b"}, "instance_id"),
    ({"bootstrap_servers": None}, "bootstrap_servers"),
    ({"topics": {"transactions": "t"}}, "topics: expected TopicNames, got dict"),
])
def test_direct_construction_validates_like_yaml(changes, needle):
    """The embeddable API builds ScoringConfig(...) itself: msgspec checks types and ranges only
    when decoding, so without its own check batch_max_records=0 reached the loop."""
    with pytest.raises(ConfigError, match=re.escape("invalid scoring config: " + needle)):
        ScoringConfig(**changes)


def test_direct_construction_takes_an_int_for_a_float_as_decoding_does():
    cfg = ScoringConfig(stats_interval_s=0, state_snapshot_s=5)
    assert cfg.stats_interval_s == 0 and cfg.state_snapshot_s == 5


@pytest.mark.parametrize("key, value", [
    ("partition.assignment.strategy", "cooperative-sticky"),
    ("partition.assignment.strategy", "range,cooperative-sticky"),
    ("group.protocol", "consumer"),
])
def test_passthrough_values_the_loop_cannot_run_with_are_refused(key, value):
    """cooperative-sticky made every worker die in on_assign ("Failed to set assignment:
    Local: Erroneous state") and restart forever, each with a traceback."""
    with pytest.raises(ConfigError, match=rf"kafka\.{key}={value}: not supported"):
        load_config(kafka={key: value})
    for ok in ("range", "roundrobin", "classic"):
        key_ok = "group.protocol" if ok == "classic" else "partition.assignment.strategy"
        assert load_config(kafka={key_ok: ok}).kafka == {key_ok: ok}


def test_metadata_broker_list_is_bootstrap_servers_under_another_name():
    with pytest.raises(ConfigError, match="kafka.metadata.broker.list: .* field bootstrap_servers"):
        build_config(kafka_pairs=("metadata.broker.list=elsewhere:9092",))


def test_a_model_path_given_as_a_path_is_kept_as_its_text():
    from pathlib import Path

    config = ScoringConfig(model_path=Path("models") / "fraud-model.meta.json")
    assert config.model_path == "models/fraud-model.meta.json"
    assert config.replace(batch_max_records=10).model_path == config.model_path
    assert ScoringConfig().replace(model_path=Path("m.meta.json")).model_path == "m.meta.json"
    assert load_config(None, model_path=Path("m.meta.json")).model_path == "m.meta.json"
