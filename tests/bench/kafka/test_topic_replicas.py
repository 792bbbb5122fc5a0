"""What `bench topics create` gives new topics on clusters of each size (no broker needed)."""

from bench.kafka.topics import describe_replicas, replica_settings


def test_three_brokers_and_more_get_three_replicas_and_two_in_sync():
    for brokers in (3, 4, 9):
        assert replica_settings(brokers) == (3, {"min.insync.replicas": "2"})
    assert describe_replicas(*replica_settings(5)) == "replication factor 3, min.insync.replicas 2"


def test_fewer_brokers_say_what_they_get():
    assert replica_settings(1) == (1, {}) and replica_settings(2) == (2, {})
    assert describe_replicas(*replica_settings(2)) == (
        "replication factor 2, min.insync.replicas 1 (a cluster of 2 brokers: an acknowledged write can be lost "
        "with one broker; from 3 brokers on, topics get 3 replicas and min.insync.replicas 2)")
