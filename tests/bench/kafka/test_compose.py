"""docker-compose.yml is not run in CI (no Docker engine); check what can be checked."""

from pathlib import Path

import yaml

from core.topics import PARTITIONS, STATE_TOPIC_CONFIG, TopicNames

COMPOSE = Path(__file__).resolve().parents[3] / "docker-compose.yml"


def test_compose_is_kraft_and_creates_the_four_topics():
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert "zookeeper" not in services
    env = services["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    init = services["kafka-init"]["command"][0]
    for name, partitions in zip(TopicNames().all(), PARTITIONS.values()):
        assert f"{name}:{partitions}" in init


def test_compose_creates_the_card_state_changelog_compacted():
    """The service with state on (the default) refuses to start without a compacted
    fraud-card-state: the compose file makes it as `bench topics create` does."""
    init = yaml.safe_load(COMPOSE.read_text())["services"]["kafka-init"]["command"][0]
    command = " ".join(init.replace("\\\n", " ").split())
    state = TopicNames().state
    assert f"--topic {state} --partitions {PARTITIONS['state']}" in command
    for key, value in STATE_TOPIC_CONFIG.items():
        assert f"--config {key}={value}" in command
