"""The live progress line's numbers: only seconds every child has finished reporting."""

import numpy as np

from bench.measure import histogram
from bench.measure.timeline import Timeline


def _blob(n):
    h = histogram.new_histogram()
    histogram.record_array(h, np.full(n, 1000))
    return histogram.encode(h)


def _sink(tl, index, visible, scores, at):
    tl.sink_tick(index, {}, visible, scores, 0, at=at)


def test_a_second_is_shown_only_once_every_child_reported_past_it():
    tl = Timeline()
    # producer 0 reported second 100 whole (its tick came at 101.2); producer 1 only half
    tl.producer_tick({100: (1000, _blob(1000)), 101: (200, _blob(200))}, index=0, at=101.2)
    tl.producer_tick({100: (500, _blob(500))}, index=1, at=100.6)
    _sink(tl, 0, {100: 1400}, 1400, at=101.3)
    assert tl.settled_second(now=101.4) == 99
    tl.producer_tick({100: (500, _blob(500)), 101: (300, _blob(300))}, index=1, at=101.3)
    assert tl.settled_second(now=101.4) == 100
    assert tl.sent[100] == 2000
    # a sink that has not reported since 101.0 holds the line at 99 (+ the slack)
    _sink(tl, 1, {}, 0, at=101.02)
    assert tl.settled_second(now=101.4) == 99


def test_settled_second_never_runs_ahead_of_the_clock():
    tl = Timeline()
    assert tl.settled_second(now=200.7) == 199
    tl.producer_tick({}, index=0, at=500.0)
    assert tl.settled_second(now=200.7) == 199


def test_backlog_counts_records_sent_by_a_second_and_not_visible_by_it():
    tl = Timeline()
    tl.producer_tick({100: (1000, _blob(1000)), 101: (1000, _blob(1000))}, index=0, at=102.1)
    _sink(tl, 0, {100: 900, 101: 1050, 102: 50}, 2000, at=102.2)
    assert tl.backlog(100) == 100
    assert tl.backlog(101) == 50          # 2,000 sent, 1,950 visible by the end of 101
    # scores counted after the second never make it negative
    assert tl.backlog(102) == 0
