"""The broker the project starts by itself: real Kafka, transactions, lifecycle, topics."""

import os
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Producer

from bench.broker import ensure_running, status, stop, stop_node
from bench.kafka.topics import TopicError, create_topics
from core.topics import TopicNames
from tests.kafka.kafka_io import read_all

pytestmark = pytest.mark.kafka


def _txn_producer(bootstrap: str) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap,
                         "transactional.id": f"test-{uuid.uuid4().hex[:8]}",
                         "linger.ms": 5})
    producer.init_transactions(30)
    return producer


def bench_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args],
                          capture_output=True, text=True, timeout=300)


def test_transactional_round_trip_keeps_per_key_order(kafka_bootstrap, fresh_topics):
    topic = fresh_topics().transactions
    producer = _txn_producer(kafka_bootstrap)
    sent = defaultdict(list)
    producer.begin_transaction()
    for i in range(10_000):
        key = f"card-{i % 97}"
        sent[key].append(i)
        producer.produce(topic, key=key.encode(), value=str(i).encode())
        if i % 2_500 == 2_499:  # several transactions, not one
            producer.commit_transaction()
            producer.begin_transaction()
    producer.commit_transaction()

    records = read_all(kafka_bootstrap, topic, expect=10_000)
    got = defaultdict(list)
    for msg in records:
        got[msg.key().decode()].append(int(msg.value()))
    assert len(records) == 10_000
    assert got == sent


def test_aborted_transaction_is_invisible_to_read_committed(kafka_bootstrap, fresh_topics):
    topic = fresh_topics().transactions
    producer = _txn_producer(kafka_bootstrap)
    producer.begin_transaction()
    for i in range(100):
        producer.produce(topic, key=b"k", value=f"aborted-{i}".encode())
    producer.flush()
    producer.abort_transaction()
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"committed")
    producer.commit_transaction()

    values = [m.value() for m in read_all(kafka_bootstrap, topic, idle_s=2.0)]
    assert values == [b"committed"]


def test_topics_create_is_idempotent_and_reports_mismatch(kafka_bootstrap):
    ns = f"idem-{uuid.uuid4().hex[:8]}"
    first = bench_cli("topics", "create", "--bootstrap", kafka_bootstrap, "--namespace", ns)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") == len(TopicNames().every())
    assert "topics get replication factor 1, min.insync.replicas 1 (a cluster of 1 broker: " in first.stdout
    second = bench_cli("topics", "create", "--bootstrap", kafka_bootstrap, "--namespace", ns)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("existed") == len(TopicNames().every()) and "created" not in second.stdout

    from confluent_kafka.admin import AdminClient, NewTopic

    bad = TopicNames.namespaced(f"bad-{uuid.uuid4().hex[:8]}")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(bad.scores, 2, 1)])[bad.scores].result()
    with pytest.raises(TopicError, match=r"exists with 2 partitions, expected 6"):
        create_topics(kafka_bootstrap, bad)
    ns_bad = bad.scores.split(".")[0]
    proc = bench_cli("topics", "create", "--bootstrap", kafka_bootstrap, "--namespace", ns_bad)
    assert proc.returncode == 1
    assert "exists with 2 partitions, expected 6" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_broker_lifecycle_up_status_down(spare_port, tmp_path):
    from core.paths import home

    port = str(spare_port)
    data = tmp_path / "broker-data"
    state = home() / "brokers" / port
    try:
        stop(spare_port, wipe=True)   # whatever an earlier session left for this port
        assert not state.exists()
        st = bench_cli("broker", "status", "--port", port)
        assert st.returncode == 1 and "not running" in st.stdout
        assert not state.exists()   # a query leaves nothing behind
        up = bench_cli("broker", "up", "--port", port, "--data-dir", str(data))
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip() == f"127.0.0.1:{port}"
        (cluster_data,) = data.glob(f"{port}-*")         # <port>-<cluster id>
        assert (cluster_data / "node-1" / "meta.properties").is_file()
        again = bench_cli("broker", "up", "--port", port)
        assert again.returncode == 0 and "already running" in again.stderr
        moved = bench_cli("broker", "up", "--port", port, "--data-dir", str(tmp_path / "other"))
        assert moved.returncode == 0 and f"warning: the cluster on port {port} already runs with its data in {cluster_data}" in moved.stderr
        st = bench_cli("broker", "status", "--port", port)
        assert st.returncode == 0 and " up " in st.stdout and str(cluster_data / "node-1") in st.stdout
        logs = bench_cli("broker", "logs", "--port", port, "--node", "2")
        assert logs.returncode == 1 and f"the broker on port {port} has 1 node(s)" in logs.stderr, logs.stderr
        down = bench_cli("broker", "down", "--port", port, "--wipe")
        assert down.returncode == 0 and "stopped" in down.stdout
        assert not cluster_data.exists() and not state.exists()
        st = bench_cli("broker", "status", "--port", port)
        assert st.returncode == 1 and "not running" in st.stdout
    finally:
        stop(spare_port, wipe=True)


def test_compiler_threads_of_the_broker_are_found(kafka_bootstrap):
    from bench.broker import find_running
    from bench.run.jitwarm import compiler_cpu_seconds

    cluster = find_running()
    assert cluster is not None
    used = compiler_cpu_seconds(cluster.pids.values())
    assert used is not None and set(used) == set(cluster.pids.values())
    assert all(seconds > 0 for seconds in used.values())   # each compiled something to get here
    assert compiler_cpu_seconds([os.getpid()]) is None   # not a JVM


def test_the_broker_logs_its_gc_pauses_with_wall_clock_times(kafka_bootstrap):
    import time

    from bench.broker import find_running
    from bench.broker.lifecycle import gc_summary

    cluster = find_running()
    since_start = gc_summary(cluster, 0, time.time() + 1)
    assert since_start is not None and since_start.count >= 1     # G1 collects during start-up
    assert 0 < since_start.max_ms < 10_000
    assert gc_summary(cluster, time.time() + 60, time.time() + 61).count == 0


def test_filesystem_type_is_the_innermost_mount():
    from bench.broker.lifecycle import _filesystem_type

    assert _filesystem_type(Path("/proc/self")) == "proc"
    assert _filesystem_type(Path("/")) not in (None, "proc")


def test_broker_up_on_a_taken_port_fails_clearly(spare_port):
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the port may be in TIME_WAIT
    squatter.bind(("127.0.0.1", spare_port))
    squatter.listen()
    try:
        proc = bench_cli("broker", "up", "--port", str(spare_port))
    finally:
        squatter.close()
    assert proc.returncode == 1
    assert f"port {spare_port} is in use by another program" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_three_nodes_survive_losing_one(spare_port):
    try:
        cluster = ensure_running(port=spare_port, nodes=3)
        assert [r["alive"] for r in status(spare_port)] == [True, True, True]
        names = TopicNames.namespaced(f"ha-{uuid.uuid4().hex[:8]}")
        made = create_topics(cluster.bootstrap, names)
        assert made["replicas"] == "replication factor 3, min.insync.replicas 2"
        assert _topic_config(cluster.bootstrap, names.transactions, "min.insync.replicas") == "2"
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all",
                             "enable.idempotence": True, "linger.ms": 5})
        failures = []

        def on_delivery(err, _msg):
            if err is not None:
                failures.append(err)

        for i in range(20_000):
            if i == 5_000:
                producer.flush(30)
                stop_node(spare_port, 3, hard=True)
            producer.produce(names.transactions, key=f"c{i % 50}".encode(),
                             value=str(i).encode(), on_delivery=on_delivery)
            producer.poll(0)
        assert producer.flush(60) == 0
        assert failures == []
        values = sorted(int(m.value()) for m in
                        read_all(cluster.bootstrap, names.transactions, expect=20_000))
        assert values == list(range(20_000))
    finally:
        stop(spare_port, timeout=10, wipe=True)


def _topic_config(bootstrap: str, topic: str, key: str) -> str:
    """One config value of a topic just created (retried while a node does not know it yet)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for attempt in range(20):
        try:
            return admin.describe_configs([resource])[resource].result(timeout=30)[key].value
        except KafkaException as exc:
            if exc.args[0].name() != "UNKNOWN_TOPIC_OR_PART" or attempt == 19:
                raise
            time.sleep(0.5)


def test_the_broker_runs_with_the_bounded_retention(kafka_bootstrap):
    """The retention settings reach the broker under the names Kafka knows (a misspelt key in
    server.properties is only a warning in its log)."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    from bench.broker.properties import RETENTION

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    resource = ConfigResource(ConfigResource.Type.BROKER, "1")
    configs = admin.describe_configs([resource])[resource].result(timeout=15)
    for key, value in RETENTION.items():
        assert configs[key].value == str(value), key
