"""core.topics.state_topic_problem: which card-state topic configs could lose a live card."""

from core.topics import STATE_TOPIC_CONFIG, state_topic_problem


def test_the_created_config_is_fine():
    assert state_topic_problem("s", dict(STATE_TOPIC_CONFIG)) is None
    assert state_topic_problem("s", {"cleanup.policy": "compact", "retention.ms": "604800000"}) is None


def test_deletion_alone_is_refused_naming_the_topic_and_the_fix():
    problem = state_topic_problem("ns.fraud-card-state", {"cleanup.policy": "delete"})
    assert "ns.fraud-card-state has cleanup.policy=delete" in problem and "must be compacted" in problem
    # `bench topics create` prints this itself for an existing topic, which it never alters: the
    # fix named is one that works on the topic as it is
    assert "kafka-configs --alter --entity-type topics --entity-name ns.fraud-card-state" in problem
    assert "`bench topics create` makes it right" not in problem
    assert "leaves an existing one as it is" in problem
    assert "must be compacted" in state_topic_problem("s", {})   # Kafka's default policy is delete


def test_compact_and_delete_needs_a_retention_longer_than_the_windows():
    for ms, size in (("86400000", "-1"), ("0", "-1"), ("-1", "1073741824")):
        problem = state_topic_problem("s", {"cleanup.policy": "compact,delete", "retention.ms": ms,
                                           "retention.bytes": size})
        assert problem is not None and "retention.ms" in problem, (ms, size)
    for ms in ("-1", str(25 * 3600 * 1000), "604800000"):
        assert state_topic_problem("s", {"cleanup.policy": "delete, compact", "retention.ms": ms,
                                         "retention.bytes": "-1"}) is None, ms
