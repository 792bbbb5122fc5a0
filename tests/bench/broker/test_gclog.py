"""Counting the broker's GC pauses inside a window, from its GC log (bench.broker.gclog)."""

from bench.broker.gclog import jvm_option, parse_pauses, window_summary

LOG = """\
[1795890000100ms] Using G1
[1795890000900ms] GC(0) Pause Young (Normal) (G1 Evacuation Pause) 25M->5M(512M) 9.073ms
[1795890001500ms] GC(1) Pause Young (Concurrent Start) (Metadata GC Threshold) 64M->8M(512M) 12.256ms
[1795890001510ms] GC(2) Concurrent Mark Cycle
[1795890001700ms] GC(2) Pause Remark 9M->9M(512M) 1.500ms
[1795890001800ms] GC(2) Concurrent Mark Cycle 290.114ms
[1795890002400ms] GC(3) Pause Young (Normal) (G1 Evacuation Pause) 253M->89M(512M) 19.839ms
"""


def test_pauses_are_parsed_and_concurrent_work_is_not_a_pause():
    pauses = parse_pauses(LOG)
    assert [(kind, ms) for _, kind, ms in pauses] == [("Young", 9.073), ("Young", 12.256),
                                                     ("Remark", 1.5), ("Young", 19.839)]
    assert pauses[0][0] == 1795890000900


def test_window_counts_pauses_that_ended_inside_it(tmp_path):
    node = tmp_path / "node-1"
    node.mkdir()
    (node / "gc.log").write_text(LOG)
    w = window_summary([node], 1795890001, 1795890003)   # [1.0 s, 3.0 s): the last three
    assert w.count == 3 and w.max_ms == 19.839 and w.p50_ms == 12.256
    assert abs(w.total_ms - 33.595) < 1e-9 and abs(w.share - 33.595 / 2000) < 1e-12
    empty = window_summary([node], 1795890003, 1795890004)
    assert empty.count == 0 and empty.share == 0.0


def test_a_broker_without_a_gc_log_has_no_summary(tmp_path):
    assert window_summary([tmp_path], 0, 10) is None
    assert jvm_option(tmp_path).startswith(f"-Xlog:gc:file={tmp_path}/gc.log:timemillis")
