"""Start, find and stop local Kafka nodes. State (pids, cluster id) lives in
core.paths.home()/brokers/<port>/ so every command and test session finds the same broker."""

import base64
import fcntl
import json
import os
import signal
import subprocess
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.broker import gclog
from bench.errors import BrokerError
from bench.broker.jars import ensure_jars, java_command
from bench.broker.procs import is_our_broker, pid_running, port_open, rss_mb, terminate
from bench.broker.properties import HOST, LOG4J2_CONFIG, node_ports, server_properties
from bench.report.result import BrokerGc
from core.paths import home

__all__ = ["DEFAULT_PORT", "Cluster", "node_log_path", "gc_summary", "ensure_running", "find_running",
           "moved_data_error", "status", "stop", "stop_node", "start_node"]

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
# (heap MB, G1 region MB) by cluster size. G1 treats an object of half a region or more as
# humongous: it goes straight to the old generation, and each one may start a marking cycle.
# With 1 MB regions every request of 512 KB or more was one: at 50,000 tx/s with a 20 ms
# linger (targets/throughput.yaml) the generator's and the scorers' produce requests gave
# 833 pauses in a 35 s run (12.9% of the time), 4,141 of them "G1 Humongous Allocation".
# 8 MB regions on a 1 GB heap: 1 pause in the 50,000 tx/s step; at 20,000 tx/s with the
# latency settings p99 45-49 ms on a fresh broker, as with 512 MB and 1 MB regions.
# The third number is the old-generation occupancy (% of the heap) at which marking starts.
HEAP_MB = {1: (1024, 8, 30), 3: (384, 1, 15)}
# Garbage creeps into the old generation under load (60 -> 150 MB in 10 minutes here) and
# G1's adaptive threshold did not start marking it; the young generation shrank meanwhile
# and the ~20 ms young pauses came twice as often: 17-20 in a 30 s run at 20,000 tx/s on a
# fresh broker, 34-43 (2.3-3.1% of the time) after a dozen runs. Marking from 15% of a 512 MB
# heap on kept the old generation at ~77 MB: 14-23 pauses (0.8-1.3%) in each of 6 runs in a
# row. On the 1 GB heap 15% is 154 MB, and after an hour of rate searches the old generation
# sat there: ~96 MB live, the rest garbage spread over the 8 MB regions, less than G1's 5%
# worth reclaiming, so every young pause started another marking that freed nothing and the
# young generation shrank to 40 MB: 29 pauses in a rate search, 7.2% of the time. From 30%
# (307 MB) the garbage piles up until reclaiming it is worth it.
G1_OPTIONS = ["-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:-G1UseAdaptiveIHOP"]
# FRAUDSTREAM_PORT moves the default broker, e.g. to run a CI clone beside a dev broker.
DEFAULT_PORT = int(os.environ.get("FRAUDSTREAM_PORT", "9092"))


@dataclass
class Cluster:
    port: int
    nodes: int
    pids: dict[int, int] = field(default_factory=dict)
    cluster_id: str = ""
    started: bool = False  # True when this call started it
    data_dir: str | None = None  # where the nodes keep their logs; None: beside the state

    @property
    def data_in_memory(self) -> bool:
        """True when the logs sit on tmpfs/ramfs: no kernel writeback to stall appends."""
        return _filesystem_type(_node_data(self, 1)) in ("tmpfs", "ramfs")

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{HOST}:{bport}" for _, bport, _ in node_ports(self.port, self.nodes))


def _dir(port: int) -> Path:
    """The cluster's state directory, made by what writes there (a status query leaves nothing
    behind) and removed whole by a wipe (its lock file sits beside it)."""
    return home() / "brokers" / str(port)


def _node_dir(port: int, node_id: int) -> Path:
    """Node `node_id`'s state: server.properties, broker.log, gc.log (and data, by default)."""
    return _dir(port) / f"node-{node_id}"


def _node_data(cluster: Cluster, node_id: int) -> Path:
    if cluster.data_dir:
        return _cluster_data(cluster) / f"node-{node_id}"
    return _node_dir(cluster.port, node_id) / "data"


def _cluster_data(cluster: Cluster) -> Path:
    # the cluster id in the name: two checkouts (two FRAUDSTREAM_HOMEs) sharing a data dir and
    # a port never find each other's formatted storage
    return Path(cluster.data_dir) / f"{cluster.port}-{cluster.cluster_id}"


def _filesystem_type(path: Path) -> str | None:
    """The type (ext4, tmpfs, ...) of the mount holding `path`, from /proc/self/mounts."""
    path = path.resolve()
    best, kind = -1, None
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = Path(fields[1].replace("\\040", " "))
        if (path == mount or mount in path.parents) and len(mount.parts) > best:
            best, kind = len(mount.parts), fields[2]
    return kind


def node_log_path(port: int, node_id: int) -> Path:
    """The log file of node `node_id` of the cluster based at `port`."""
    return _node_dir(port, node_id) / "broker.log"


def gc_summary(cluster: Cluster, start_s: float, end_s: float) -> BrokerGc | None:
    """The broker's GC pauses in [start_s, end_s), all nodes (bench.broker.gclog)."""
    nodes = [_node_dir(cluster.port, n) for n in range(1, cluster.nodes + 1)]
    return gclog.window_summary(nodes, start_s, end_s)


@contextmanager
def _locked(port: int):
    lock = _dir(port).with_name(f"{port}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _load(port: int) -> Cluster | None:
    path = _dir(port) / "state.json"
    if not path.is_file():
        return None
    raw = json.loads(path.read_text())
    return Cluster(raw["port"], raw["nodes"], {int(k): v for k, v in raw["pids"].items()},
                   raw["cluster_id"], data_dir=raw.get("data_dir"))


def _save(cluster: Cluster) -> None:
    path = _dir(cluster.port) / "state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"port": cluster.port, "nodes": cluster.nodes,
                               "pids": cluster.pids, "cluster_id": cluster.cluster_id,
                               "data_dir": cluster.data_dir}))
    tmp.replace(path)


def _brokers_answering(bootstrap: str, timeout: float = 2.0) -> int:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0,
                         "logger": _quiet_logger})
    try:
        return len(admin.list_topics(timeout=timeout).brokers)
    except Exception:  # noqa: BLE001 - any failure means "not answering yet"
        return 0


class _QuietLogger:
    def log(self, *args, **kwargs):
        pass


_quiet_logger = _QuietLogger()


def find_running(port: int = DEFAULT_PORT) -> Cluster | None:
    """The fraudstream cluster based at `port` if all its nodes are alive, else None."""
    cluster = _load(port)
    if cluster is None or not cluster.pids:
        return None
    if not all(is_our_broker(pid) for pid in cluster.pids.values()):
        return None
    return cluster


def _new_cluster_id() -> str:
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    errors = [ln for ln in text if " ERROR " in ln or "Exception" in ln]
    return "\n".join((errors or text)[-lines:])


def _launch_node(java: str, libs: Path, cluster: Cluster, node_id: int, heap: tuple[int, int, int]) -> int:
    node_dir = _node_dir(cluster.port, node_id)
    node_dir.mkdir(parents=True, exist_ok=True)
    data = _node_data(cluster, node_id)
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BrokerError(f"cannot create the broker's data directory {data}: {exc.strerror}") from exc
    props = node_dir / "server.properties"
    props.write_text(server_properties(cluster.port, cluster.nodes, node_id, str(data)))
    log4j = node_dir / "log4j2.properties"
    log4j.write_text(LOG4J2_CONFIG)
    classpath = f"{libs}/*"
    if not (data / "meta.properties").is_file():
        fmt = [java, "-cp", classpath, f"-Dlog4j2.configurationFile={log4j}",
               "kafka.tools.StorageTool", "format", "-t", cluster.cluster_id, "-c", str(props)]
        if cluster.nodes == 1:
            fmt.append("--standalone")
        proc = subprocess.run(fmt, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BrokerError(f"formatting node {node_id} failed: "
                              f"{(proc.stderr or proc.stdout).strip()[-400:]}")
    log = open(node_log_path(cluster.port, node_id), "ab")
    heap_mb, region_mb, ihop = heap
    cmd = [java, f"-Xmx{heap_mb}m", f"-Xms{heap_mb}m", *G1_OPTIONS, f"-XX:G1HeapRegionSize={region_mb}m",
           f"-XX:InitiatingHeapOccupancyPercent={ihop}",
           gclog.jvm_option(node_dir),
           "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={node_dir}",
           "-Dfraudstream.broker=1", "-cp", classpath, "kafka.Kafka", str(props)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    log.close()
    return proc.pid


def ensure_running(port: int = DEFAULT_PORT, nodes: int = 1, echo=print,
                   timeout: float = START_TIMEOUT_S, data_dir: str | None = None) -> Cluster:
    """Start the cluster based at `port` unless it already runs; wait until it answers.

    `data_dir`: keep the nodes' logs in data_dir/<port>-<cluster id>/node-N (e.g. on tmpfs), not
    beside the cluster state. It applies when the cluster starts: a running one is returned
    as it is (`moved_data_error` tells a caller that asked for another place)."""
    if nodes not in HEAP_MB:
        raise BrokerError(f"--nodes must be 1 or 3, got {nodes}")
    data_dir = _resolved(data_dir)
    with _locked(port):
        running = find_running(port)
        if running is not None:
            if running.nodes != nodes:
                raise BrokerError(
                    f"a {running.nodes}-node fraudstream cluster already runs on port {port}; "
                    f"stop it first: bench broker down --port {port}")
            return running
        for _, bport, cport in node_ports(port, nodes):
            for p in (bport, cport):
                if port_open(p):
                    raise BrokerError(
                        f"port {p} is in use by another program that is not a fraudstream "
                        f"broker; free it or choose another --port")
        java = java_command()
        libs = ensure_jars(echo)
        previous = _load(port)
        if previous is not None and previous.nodes != nodes:
            raise BrokerError(
                f"{_dir(port)} holds data of a {previous.nodes}-node cluster; wipe it first: "
                f"bench broker down --port {port} --wipe")
        cluster = Cluster(port, nodes, {}, previous.cluster_id if previous else _new_cluster_id(),
                          started=True, data_dir=data_dir)
        _drop_stale_memory_data(cluster, echo)
        t0 = time.monotonic()
        for node_id, _, _ in node_ports(port, nodes):
            cluster.pids[node_id] = _launch_node(java, libs, cluster, node_id, HEAP_MB[nodes])
        _save(cluster)
        _wait_ready(cluster, timeout)
        echo(f"kafka {nodes}-node cluster up in {time.monotonic() - t0:.1f}s: {cluster.bootstrap}")
        return cluster


def _drop_stale_memory_data(cluster: Cluster, echo) -> None:
    """Delete other clusters' logs for this port from an in-memory data dir before starting.

    Nothing runs on the port (checked under its lock), so `<port>-<other id>` directories there
    belong to stopped clusters of other homes (a deleted clone, a wiped state): on tmpfs they
    hold RAM for good (four such held 21 GB of 24 on 2026-12-06 and the kernel killed the
    broker). On disk they are left alone."""
    import shutil

    if not cluster.data_dir or not cluster.data_in_memory:
        return
    ours = _cluster_data(cluster)
    for stale in Path(cluster.data_dir).glob(f"{cluster.port}-*"):
        if stale != ours and stale.is_dir():
            size = sum(f.stat().st_size for f in stale.rglob("*") if f.is_file())
            shutil.rmtree(stale, ignore_errors=True)
            echo(f"removed {stale} ({size / 1e6:,.0f} MB in memory): logs of a stopped cluster "
                 f"on port {cluster.port} (another home's, or one whose state was wiped)")


def _resolved(data_dir: str | None) -> str | None:
    """A --data-dir as the cluster state keeps it: absolute, ~ expanded."""
    return None if data_dir is None else str(Path(data_dir).expanduser().resolve())


def moved_data_error(running: Cluster, data_dir: str | None) -> str | None:
    """Why `running` cannot serve a request for its data in `data_dir` (None: it can)."""
    if data_dir is None or _resolved(data_dir) == running.data_dir:
        return None
    return (f"the cluster on port {running.port} already runs with its data in "
            f"{_node_data(running, 1).parent}; stop it first to move it to {data_dir}: "
            f"bench broker down --port {running.port}")


def _wait_ready(cluster: Cluster, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for node_id, pid in cluster.pids.items():
            if not pid_running(pid):
                raise BrokerError(f"kafka node {node_id} died during start; last log lines:\n"
                                  f"{_log_tail(node_log_path(cluster.port, node_id))}")
        if _brokers_answering(cluster.bootstrap) >= cluster.nodes:
            return
        time.sleep(0.5)
    raise BrokerError(f"kafka did not answer within {timeout:.0f}s; last log lines:\n"
                      f"{_log_tail(node_log_path(cluster.port, 1))}")


def stop(port: int = DEFAULT_PORT, *, timeout: float = STOP_TIMEOUT_S, wipe: bool = False,
         drop_data: bool = False) -> bool:
    """Stop the cluster (SIGTERM, then SIGKILL after `timeout`). True if anything was running.

    `drop_data` deletes the nodes' data (topics), `wipe` also the state and the broker logs."""
    import shutil

    with _locked(port):
        cluster = _load(port)
        pids = [p for p in (cluster.pids.values() if cluster else []) if is_our_broker(p)]
        terminate(pids, timeout)
        if cluster is not None:
            cluster.pids = {}
            _save(cluster)
        if (wipe or drop_data) and cluster is not None:
            if cluster.data_dir:   # every node's data sits in the cluster's own directory
                shutil.rmtree(_cluster_data(cluster), ignore_errors=True)
            else:
                for node_id, _, _ in node_ports(port, cluster.nodes):
                    shutil.rmtree(_node_data(cluster, node_id), ignore_errors=True)
        if wipe:
            shutil.rmtree(_dir(port), ignore_errors=True)
        return bool(pids)


def stop_node(port: int, node_id: int, *, hard: bool = False) -> None:
    """Stop one node of a running cluster (SIGKILL when hard), for fault injection."""
    cluster = find_running(port)
    if cluster is None or node_id not in cluster.pids:
        raise BrokerError(f"no running node {node_id} in the cluster on port {port}")
    pid = cluster.pids[node_id]
    if hard:
        os.kill(pid, signal.SIGKILL)
    else:
        terminate([pid], STOP_TIMEOUT_S)
    while pid_running(pid):
        time.sleep(0.1)


def start_node(port: int, node_id: int) -> None:
    """Restart one stopped node of a cluster whose other nodes still run."""
    with _locked(port):
        cluster = _load(port)
        if cluster is None:
            raise BrokerError(f"no cluster state for port {port}")
        if is_our_broker(cluster.pids.get(node_id)):
            return
        cluster.pids[node_id] = _launch_node(java_command(), ensure_jars(), cluster, node_id,
                                             HEAP_MB[cluster.nodes])
        _save(cluster)


def status(port: int = DEFAULT_PORT) -> list[dict]:
    """One dict per node: id, port, pid, alive, rss_mb, data (its log directory)."""
    cluster = _load(port)
    if cluster is None:
        return []
    rows = []
    for node_id, bport, _ in node_ports(port, cluster.nodes):
        pid = cluster.pids.get(node_id)
        alive = is_our_broker(pid)
        rows.append({"node": node_id, "port": bport, "pid": pid if alive else None,
                     "alive": alive, "rss_mb": rss_mb(pid) if alive else None,
                     "data": str(_node_data(cluster, node_id))})
    return rows
