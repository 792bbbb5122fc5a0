"""`bench run` gives up at once when the local broker it waits on has stopped."""

from types import SimpleNamespace

from bench.run import orchestrate as run
from bench.broker import lifecycle


def _rows(*alive):
    return [{"node": i + 1, "port": 9092 + i, "pid": None, "alive": a, "rss_mb": None, "data": "d"}
            for i, a in enumerate(alive)]


def test_gone_only_when_no_node_is_left(monkeypatch):
    cluster = SimpleNamespace(port=9092)
    for rows, gone in [(_rows(False), True), (_rows(False, False, False), True),
                       (_rows(False, True, False), False), (_rows(True), False), ([], False)]:
        monkeypatch.setattr(lifecycle, "status", lambda port, rows=rows: rows)
        why = run._broker_gone(cluster)
        assert (why is not None) == gone, rows
        if gone:
            assert "port 9092 has stopped" in why and why.endswith("node-1/broker.log")
