"""A broker whose logs live in RAM (tmpfs) bounds them; stale clusters' logs there are freed."""

from pathlib import Path

from bench.broker import lifecycle
from bench.broker.properties import IN_MEMORY_RETENTION, server_properties


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_logs_in_memory_keep_a_bounded_tail_per_partition():
    in_memory = _props(server_properties(9092, 1, 1, "/dev/shm/x", in_memory=True))
    on_disk = _props(server_properties(9092, 1, 1, "/var/x"))
    for key, value in IN_MEMORY_RETENTION.items():
        assert in_memory[key] == str(value)
        assert key not in on_disk
    assert int(in_memory["log.segment.bytes"]) * 4 <= int(in_memory["log.retention.bytes"])


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
