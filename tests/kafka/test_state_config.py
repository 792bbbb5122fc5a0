"""The card state's configuration as a user meets it, on a real broker: `python -m core
--no-state` with no --model scores with the stateless model and writes no card; with a model
that reads the card state, or a card-state topic that is not compacted, the service stops at
start-up with one error line instead of restarting its workers forever (or losing cards)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from bench.errors import TopicError
from bench.kafka.topics import create_topics
from core.paths import default_model_path
from tests.kafka.eos_harness import (Service, finish, make_inputs, one_error_line, produce_inputs, verify,
                                     wait_drained)
from tests.kafka.kafka_io import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]
N = 600


def test_no_state_scores_with_the_stateless_model(kafka_bootstrap, fresh_topics, tmp_path):
    names = fresh_topics("nostate")
    inputs = make_inputs(N, 0, 11)
    produce_inputs(kafka_bootstrap, names.transactions, inputs)
    group = f"nostate-{uuid.uuid4().hex[:6]}"
    svc = Service(kafka_bootstrap, names, group, tmp_path, workers=2, extra=("--no-state",))
    try:
        wait_drained(kafka_bootstrap, group, names.transactions, timeout=120, service=svc)
        assert svc.stop() == 0, svc.tail()
    finally:
        finish(None, svc)
    v = verify(kafka_bootstrap, names, inputs)
    assert v.exactly_once(), v
    events = [json.loads(m.value()) for m in read_all(kafka_bootstrap, names.scores, expect=N)]
    stateful = json.loads(default_model_path().read_text())["model_version"]
    versions = {e["model_version"] for e in events}
    assert len(events) == N and not any("card" in e for e in events)
    assert len(versions) == 1 and stateful not in versions
    assert read_all(kafka_bootstrap, names.state, idle_s=1.0) == []


def test_no_state_with_a_stateful_model_is_one_error_line(kafka_bootstrap, fresh_topics, tmp_path):
    names = fresh_topics("nostate-bad")
    svc = Service(kafka_bootstrap, names, f"nostate-bad-{uuid.uuid4().hex[:6]}", tmp_path, workers=2,
                  extra=("--no-state", "--model", str(default_model_path())))
    assert "only the per-card state computes" in one_error_line(svc)
    # a reason only a worker finds: it leaves it to the supervisor's line, no twin line of its own
    log = svc.log_path.read_text()
    assert log.count("only the per-card state computes") == 1 and " ERROR " not in log, svc.tail()


def _policy(admin: AdminClient, topic: str) -> str | None:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        entry = admin.describe_configs([resource])[resource].result(10).get("cleanup.policy")
    except Exception:   # not known yet
        return None
    return entry.value if entry is not None else None


def _refused_by_create_topics(kafka_bootstrap, admin: AdminClient, names) -> None:
    """Once the broker shows names.state with cleanup.policy=delete, create_topics refuses it."""
    deadline = time.monotonic() + 30
    while _policy(admin, names.state) != "delete":
        assert time.monotonic() < deadline, f"{names.state} never showed cleanup.policy=delete"
        time.sleep(0.5)
    with pytest.raises(TopicError, match="must be compacted"):
        create_topics(kafka_bootstrap, names)


def test_a_state_topic_that_is_not_compacted_is_refused(kafka_bootstrap, fresh_topics, tmp_path):
    names = fresh_topics("state-delete")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.delete_topics([names.state])[names.state].result(30)
    topic = NewTopic(names.state, num_partitions=6, replication_factor=1,
                     config={"cleanup.policy": "delete", "retention.ms": "3600000"})
    for attempt in range(30):   # the deletion completes in the background
        try:
            admin.create_topics([topic])[names.state].result(30)
            break
        except Exception as exc:
            if "MARKED_FOR_DELETION" not in str(exc) and "ALREADY_EXISTS" not in str(exc) or attempt == 29:
                raise
            time.sleep(1.0)
    # until the broker answers for the new topic: before that its metadata may still be the
    # deleted one's, and `bench topics create` would make a compacted topic of that name
    _refused_by_create_topics(kafka_bootstrap, admin, names)
    svc = Service(kafka_bootstrap, names, f"state-delete-{uuid.uuid4().hex[:6]}", tmp_path, workers=2)
    error = one_error_line(svc)
    assert f"topic {names.state} has cleanup.policy=delete" in error and "must be compacted" in error


def test_a_refused_state_topic_is_found_before_any_other_topic_is_created(kafka_bootstrap):
    from core.topics import TopicNames

    names = TopicNames.namespaced(f"half-{uuid.uuid4().hex[:8]}")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(names.state, num_partitions=6, replication_factor=1,
                                  config={"cleanup.policy": "delete"})])[names.state].result(30)
    try:
        _refused_by_create_topics(kafka_bootstrap, admin, names)
        time.sleep(1.0)   # a topic created before the refusal has shown in the metadata by now
        listed = admin.list_topics(timeout=10).topics
        assert not [t for t in names.all() if t in listed], "topics were created before the refusal"
    finally:
        listed = admin.list_topics(timeout=10).topics
        for future in admin.delete_topics([t for t in names.every() if t in listed]).values():
            future.result(30)
