"""Instance ids (core.identity): unique per home without coordination, stable across restarts."""

import re

import pytest

from core.config import INSTANCE_ID_PATTERN, load_config
from core.errors import ConfigError
from core.identity import claim_instance_id, lock_explicit_id
from core.txn import consumer_settings, producer_settings


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A FRAUDSTREAM_HOME of its own: one "host"."""
    def use(name):
        monkeypatch.setenv("FRAUDSTREAM_HOME", str(tmp_path / name))
    use("a")
    return use


def test_an_id_is_made_once_per_home_and_taken_back_after_a_restart(host):
    first, lock = claim_instance_id("g")
    assert re.fullmatch(INSTANCE_ID_PATTERN, first)
    lock.close()                      # the service exits (or is SIGKILLed: the kernel drops the flock)
    again, lock = claim_instance_id("g")
    assert again == first
    second, lock2 = claim_instance_id("g")    # a second service on the same home, meanwhile
    assert second != first
    host("b")                          # another host (or a copy of the checkout)
    other, lock3 = claim_instance_id("g")
    assert other not in (first, second)
    for handle in (lock, lock2, lock3):
        handle.close()


def test_an_explicit_id_is_refused_twice_on_one_home(host):
    held = lock_explicit_id("g", "blue")
    with pytest.raises(ConfigError, match="instance id 'blue' of group g is already used by another service"):
        lock_explicit_id("g", "blue")
    lock_explicit_id("other-group", "blue").close()
    held.close()
    lock_explicit_id("g", "blue").close()


def test_the_instance_id_names_both_kafka_ids_and_is_validated():
    cfg = load_config(group_id="scoring", instance_id="host-1.a")
    assert producer_settings(cfg, 4)["transactional.id"] == "scoring.host-1.a-4"
    assert consumer_settings(cfg, 4)["group.instance.id"] == "scoring.host-1.a-4"
    with pytest.raises(ConfigError, match="instance_id"):
        load_config(instance_id="two words")
