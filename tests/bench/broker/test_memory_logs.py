"""A broker keeps a bounded tail of each partition; stale clusters' logs in RAM are freed."""

from pathlib import Path

from bench.broker import lifecycle
from bench.broker.properties import RETENTION, server_properties


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_every_node_keeps_a_bounded_tail_per_partition():
    for nodes, node_id in ((1, 1), (3, 2)):
        props = _props(server_properties(9092, nodes, node_id, "/dev/shm/x"))
        for key, value in RETENTION.items():
            assert props[key] == str(value)
        assert int(props["log.segment.bytes"]) * 4 <= int(props["log.retention.bytes"])
        # what retention removes leaves memory within seconds (Kafka's default: a minute)
        assert int(props["log.segment.delete.delay.ms"]) <= 5_000


def _cluster(data_dir: Path, cluster_id: str) -> lifecycle.Cluster:
    return lifecycle.Cluster(9092, 1, {}, cluster_id, data_dir=str(data_dir))


def _stale_and_ours(root: Path) -> tuple[Path, Path, Path]:
    stale = root / "9092-OLD" / "node-1"
    other_port = root / "39092-OLD" / "node-1"
    ours = root / "9092-NEW" / "node-1"
    for d in (stale, other_port, ours):
        d.mkdir(parents=True)
        (d / "segment.log").write_bytes(b"x" * 1000)
    return stale.parent, other_port.parent, ours.parent


def test_stale_logs_of_the_port_are_removed_from_memory_only(tmp_path, monkeypatch):
    said = []
    stale, other_port, ours = _stale_and_ours(tmp_path)
    monkeypatch.setattr(lifecycle.Cluster, "data_in_memory", property(lambda self: True))
    lifecycle._drop_stale_memory_data(_cluster(tmp_path, "NEW"), said.append)
    assert not stale.exists()
    assert other_port.exists() and ours.exists()   # another port's cluster, and our own
    assert len(said) == 1 and "9092-OLD" in said[0] and "MB in memory" in said[0]


def test_stale_logs_on_disk_are_left_alone(tmp_path, monkeypatch):
    stale, _, _ = _stale_and_ours(tmp_path)
    monkeypatch.setattr(lifecycle.Cluster, "data_in_memory", property(lambda self: False))
    lifecycle._drop_stale_memory_data(_cluster(tmp_path, "NEW"), print)
    assert stale.exists()
