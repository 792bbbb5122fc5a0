"""A local Apache Kafka 4.x (KRaft) broker or three-node cluster, run from Maven jars.

    cluster = ensure_running(port=9092, nodes=1)   # starts it, or finds it running
    cluster.bootstrap                              # "127.0.0.1:9092"
    stop(port=9092)
"""

from bench.errors import BrokerError
from bench.broker.lifecycle import DEFAULT_PORT, Cluster, ensure_running, find_running, status, stop, stop_node

__all__ = ["BrokerError", "DEFAULT_PORT", "Cluster", "ensure_running", "find_running", "status", "stop", "stop_node"]
