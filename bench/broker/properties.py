"""server.properties for one combined KRaft node, alone or in a three-node quorum on loopback."""

__all__ = ["node_ports", "server_properties", "LOG4J2_CONFIG", "RETENTION"]

HOST = "127.0.0.1"
# Controller ports sit 10 above the broker ports, so nodes on 9092..9094 use 9102..9104.
CONTROLLER_OFFSET = 10


def node_ports(port: int, nodes: int) -> list[tuple[int, int, int]]:
    """(node id, broker port, controller port) for each node of a cluster based at `port`."""
    return [(i + 1, port + i, port + CONTROLLER_OFFSET + i) for i in range(nodes)]


# A benchmark writes fast: a 3-minute search at 100,000 tx/s writes ~20 GB of transactions and
# scores (x3 on the three-node cluster). In memory (tmpfs) that is RAM: on a 24 GiB machine
# the kernel killed the broker and a client (2026-12-06); on disk it fills the disk. So each
# partition keeps its newest ~512 MB (whole 64 MB segments, checked every 10 s); the pipeline
# reads seconds behind its head, so nothing it still needs is deleted. A segment past retention
# (or of a deleted topic) is only renamed at first and removed a minute later by default: at
# ~240 MB/s of transactions and scores that minute held ~14 GB more, and the kernel killed
# `bench run scenarios/peak-throughput.yaml` (2026-12-06, 20 GB of logs in /dev/shm). Removed
# after a second instead: an unlinked segment that a fetch still has open stays readable.
RETENTION = {
    "log.retention.bytes": 512 * 1024 * 1024,
    "log.segment.bytes": 64 * 1024 * 1024,
    "log.retention.check.interval.ms": 10_000,
    "log.segment.delete.delay.ms": 1_000,
}


def server_properties(port: int, nodes: int, node_id: int, log_dir: str) -> str:
    ports = node_ports(port, nodes)
    _, broker_port, controller_port = ports[node_id - 1]
    replicas = min(3, nodes)
    min_isr = 2 if nodes >= 3 else 1
    props = {
        "process.roles": "broker,controller",
        "node.id": node_id,
        "listeners": f"PLAINTEXT://{HOST}:{broker_port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{broker_port},CONTROLLER://{HOST}:{controller_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": log_dir,
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": 0,
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": replicas,
        # 50 partitions by default: slow to create on first use and pointless on one host.
        "offsets.topic.num.partitions": 6,
        "transaction.state.log.num.partitions": 6,
        # The log cleaner's 128 MB default buffer sits on the 512 MB heap for good, so G1
        # keeps eden at ~24 MB: a young GC every ~0.4 s at 20,000 tx/s (live heap after GC
        # 210 MB). 16 MB covers the compacted __consumer_offsets here: 78 MB live, ~1.2 s.
        "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
    }
    props.update(RETENTION)
    if nodes == 1:
        props["controller.quorum.bootstrap.servers"] = f"{HOST}:{controller_port}"
    else:
        props["controller.quorum.voters"] = ",".join(
            f"{nid}@{HOST}:{cport}" for nid, _, cport in ports
        )
    return "".join(f"{key}={value}\n" for key, value in props.items())


LOG4J2_CONFIG = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRefs = stdout
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""
