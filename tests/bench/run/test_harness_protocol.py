"""The runner's side of the child-process protocol (bench.run.protocol), through real
multiprocessing queues: what each report does to the harness, which commands it sends, and
that a child dying or an unknown message is a HarnessError."""

import pickle
import time

import msgspec
import numpy as np
import pytest

from bench.errors import HarnessError
from bench.load.generator import ProducerSpec
from bench.measure import histogram
from bench.measure.sink import SinkSpec
from bench.run.harness import Harness
from bench.run.protocol import (Finish, Plan, ProducerDone, ProducerTick, Ready, Report, SinkDone,
                                SinkTick, Stop)

SEC = 1_770_000_000


def _blob(*values_us):
    h = histogram.new_histogram()
    histogram.record_array(h, np.array(values_us))
    return histogram.encode(h)


class _Counting(Harness):
    absorbed = 0

    def _absorb(self, msg) -> None:
        super()._absorb(msg)
        self.absorbed += 1


def _harness(producers=2, sinks=2, traffic=None) -> _Counting:
    # The processes are created, not started, unless a test calls start().
    return _Counting(producers=[ProducerSpec(i, "127.0.0.1:1", "t", {}, traffic, 7) for i in range(producers)],
                     sinks=[SinkSpec(i, sinks, {}, "s", "a", {"s": 6, "a": 3}, 7) for i in range(sinks)])


def _report(h: _Counting, *messages) -> None:
    """Send `messages` as children would and let the harness absorb them all."""
    target = h.absorbed + len(messages)
    for m in messages:
        h.results.put(m)
    deadline = time.monotonic() + 30     # a queue's feeder thread delivers asynchronously
    while h.absorbed < target and time.monotonic() < deadline:
        h.pump(0.1)
    assert h.absorbed == target


def test_every_message_pickles_to_an_equal_struct_and_says_its_kind():
    tick = SinkTick(1, {SEC: (b"a", b"b", b"c")}, {SEC: 3}, 3, 0)
    assert pickle.loads(pickle.dumps(tick)) == tick
    assert msgspec.json.decode(msgspec.json.encode(tick))["kind"] == "SinkTick"
    assert msgspec.json.decode(msgspec.json.encode(tick), type=Report) == tick
    assert msgspec.json.decode(b'{"kind": "Plan", "segments": [[1, 2, 3.5]]}', type=Plan) == Plan([(1, 2, 3.5)])


def test_reports_feed_the_timeline_and_the_totals():
    h = _harness()
    try:
        _report(h, Ready(0, 1.5), Ready(1, 2.5),
                ProducerTick(0, {SEC: (2, _blob(100, 200))}), ProducerTick(1, {SEC: (3, _blob(300))}),
                SinkTick(0, {SEC: (_blob(5000), _blob(4000), _blob(1000))}, {SEC + 1: 1}, 1, 0),
                SinkTick(1, {SEC: (_blob(6000), _blob(5000), _blob(1000))}, {SEC + 1: 1}, 1, 1))
        assert h._ready == {0, 1} and h.pool_seconds == 2.5
        tl = h.timeline
        assert tl.sent == {SEC: 5} and tl.delay[SEC].get_total_count() == 3
        assert tl.latency[SEC].get_total_count() == 2 and tl.visible == {SEC + 1: 2}
        assert tl.total_scores == 2 and tl.total_alerts == 1
    finally:
        h.close()


def test_plan_stop_and_finish_are_commands_and_done_reports_are_merged():
    h = _harness()
    try:
        h.plan([(SEC * 10**9, 5 * 10**9, 1000.0)], replace=True)
        assert [q.get(timeout=5) for q in h._p_cmd] == [Plan([(SEC * 10**9, 5 * 10**9, 500.0)], True)] * 2
        seqs = np.arange(4, dtype=np.int64)
        _report(h, ProducerDone(0, 10, 1, ["timed out"], np.array([3], np.int64),
                                np.array([4], np.int8)),
                ProducerDone(1, 20, 0, [], np.array([], np.int64), np.array([], np.int8)),
                SinkDone(0, seqs[:2], np.array([False, True]), seqs[1:2], 1, 0),
                SinkDone(1, seqs[2:], np.array([False, False]), seqs[:0], 0, 2))
        assert h.stop_producers(timeout=5) == {0: 10, 1: 20}
        assert [q.get(timeout=5) for q in h._p_cmd] == [Stop(), Stop()]
        assert h.n_delivery_errors == 1 and h.delivery_errors == ["timed out"]
        done = h.finish_sinks(timeout=5)
        assert [q.get(timeout=5) for q in h._s_cmd] == [Finish(), Finish()]
        assert done["score_seqs"].tolist() == [0, 1, 2, 3] and done["flagged"].tolist() == [False, True, False, False]
        assert done["alert_seqs"].tolist() == [1] and done["positives"].tolist() == [3]
        assert done["positive_patterns"].tolist() == [4]
        assert (done["no_header"], done["foreign"]) == (1, 2)
    finally:
        h.close()


def test_an_unknown_message_is_a_harness_error():
    h = _harness()
    try:
        with pytest.raises(HarnessError, match=r"unknown message .*\('tick', 0, \{\}\)"):
            _report(h, ("tick", 0, {}))
    finally:
        h.close()


def test_a_child_that_dies_before_ready_is_a_harness_error_naming_it():
    h = _harness(producers=1, sinks=0, traffic=None)   # no traffic: its pool cannot be built
    try:
        with pytest.raises(HarnessError, match=r"^bench-producer-0 \(pid \d+\) ended during the run: exit code 1$"):
            h.start(timeout=120)
    finally:
        h.close()


def test_a_report_that_does_not_come_is_a_harness_error():
    h = _harness(producers=1, sinks=0)
    try:
        with pytest.raises(HarnessError, match=r"^load generator did not finish within 1s$"):
            h.stop_producers(timeout=1)
    finally:
        h.close()
