"""Timeline.judge: unseen records at their true age, the sustained rule (lag at a window's end
no larger than at its start, within Timeline.lag_bound), achieved counted over the window's
own records, and sends per second by the clock."""

import numpy as np
import pytest

from bench.load.schedule import NS
from bench.measure import histogram
from bench.measure.timeline import Timeline
from bench.spec.scenario import Slo

A = 1_800_000_000          # the window [A, A + 4)
SLO = Slo(p99_ms=50, p999_ms=100, min_rate_ratio=0.95)


def _blob(n, us=10_000):
    h = histogram.new_histogram()
    histogram.record_array(h, np.full(n, us))
    return histogram.encode(h)


def _feed(tl, sent, seen, visible, sent_at=None, lat_us=10_000):
    """sent / seen: {intended second: records sent / of them visible}; visible: {second: n}."""
    tl.producer_tick({s: (n, _blob(n, 100)) for s, n in sent.items()}, at=0.0, sent_at=sent_at)
    tl.sink_tick(0, {s: (_blob(n, lat_us), _blob(n, lat_us), _blob(n, 0)) for s, n in seen.items()},
                 visible, sum(visible.values()), 0, at=0.0)


def test_records_never_seen_count_at_now_minus_their_intended_time():
    tl = Timeline()
    # 1,000/s; the last second's records never showed up; judged 10 s after the window
    _feed(tl, {A + i: 1000 for i in range(4)}, {A + i: 1000 for i in range(3)},
          {A + i: 1000 for i in range(3)})
    now = (A + 14) * NS
    ages = tl.unseen_ages_us(A, A + 4, 1000.0, now)
    assert len(ages) == 1000
    # intended A+3 .. A+3.999: 11 to 10.001 s old, not now - window end (10 s) for all
    assert ages.max() == 11_000_000 and ages.min() == pytest.approx(10_001_000, abs=1)
    w = tl.judge(A, A + 4, 1000.0, SLO, now)
    assert w.unseen == 1000 and w.planned == 4000 and w.measured == 3000
    assert w.judged_e2e.max_ms == pytest.approx(11_000, rel=0.01)
    assert not w.passed and not w.checks.p99 and not w.checks.rate


def test_records_the_generator_never_sent_are_the_latest_of_their_second():
    tl = Timeline()
    _feed(tl, {A: 1000, A + 1: 400}, {A: 1000, A + 1: 400}, {A: 1000, A + 1: 400})
    ages = tl.unseen_ages_us(A, A + 2, 1000.0, (A + 5) * NS)
    assert len(ages) == 600
    # the 600 unsent records of A+1 are due at A+1.4 .. A+1.999
    assert ages.max() == 3_600_000 and ages.min() == pytest.approx(3_001_000, abs=1)


def test_a_generator_whose_seconds_are_offset_leaves_nothing_unseen():
    """At 1,000/s a generator that started mid-second puts 999 in one second and 1,001 in the
    next: all seen, nothing is unseen (per second against the schedule, the 999 looked like
    one record missing for the whole window)."""
    tl = Timeline()
    sent = {A: 999, A + 1: 1001, A + 2: 999, A + 3: 1001}
    _feed(tl, sent, sent, sent)
    assert len(tl.unseen_ages_us(A, A + 4, 1000.0, (A + 64) * NS)) == 0
    w = tl.judge(A, A + 4, 1000.0, SLO, (A + 64) * NS)
    assert w.unseen == 0 and w.planned == 4000 and w.judged_e2e.max_ms < 100


def test_sent_but_unseen_and_never_sent_both_count():
    tl = Timeline()
    # 1,000/s over 3 s: 50 of A's sent records never seen, A+2's last 300 never sent
    _feed(tl, {A: 1000, A + 1: 1000, A + 2: 700}, {A: 950, A + 1: 1000, A + 2: 700},
          {A: 950, A + 1: 1000, A + 2: 700})
    now = (A + 10) * NS
    ages = tl.unseen_ages_us(A, A + 3, 1000.0, now)
    assert len(ages) == 350
    # A's missing are its latest 50 (A+0.95 ..), the unsent A+2.7 .. A+2.999
    assert ages.max() == pytest.approx(9_050_000, abs=1_000)
    assert ages.min() == pytest.approx(7_001_000, abs=1_000)


def test_a_window_whose_lag_grows_is_not_sustained_even_at_95_percent_of_the_rate():
    tl = Timeline()
    # 10,000/s asked, 9,500/s out: every record of the window is visible by the time it is
    # judged, latency low, rate >= 95% -- the old rule passed this; the lag grows by 1,500
    # from the end of the window's first second to its end
    secs = range(A - 1, A + 4)
    _feed(tl, {s: 10_000 for s in secs}, {s: 10_000 for s in secs}, {s: 9_500 for s in secs},
          lat_us=20_000)
    w = tl.judge(A, A + 4, 10_000.0, SLO, (A + 30) * NS)
    assert (w.lag_start, w.lag_end) == (1000, 2500)
    assert tl.lag_bound(10_000.0, SLO) == 500           # 50 ms of traffic
    assert w.checks.rate and w.checks.p99 and not w.checks.throughput and not w.passed


def test_a_steady_lag_within_the_bound_is_sustained():
    tl = Timeline()
    secs = range(A - 1, A + 4)
    visible = {s: 10_000 for s in secs}
    visible[A - 1] = 9_700          # 300 in flight at the start ...
    visible[A + 3] = 9_500          # ... 800 at the end: grew by 500, the bound
    _feed(tl, {s: 10_000 for s in secs}, {s: 10_000 for s in secs}, visible, lat_us=20_000)
    w = tl.judge(A, A + 4, 10_000.0, SLO, (A + 30) * NS)
    assert w.lag_end - w.lag_start == 500 and w.checks.throughput and w.passed


def test_the_lag_bound_is_the_slos_p99_of_traffic_at_most_a_quarter_second():
    tl = Timeline()
    assert tl.lag_bound(20_000.0, Slo(p99_ms=50)) == 1_000
    assert tl.lag_bound(20_000.0, Slo(p99_ms=3000, p999_ms=5000)) == 5_000


def test_achieved_counts_the_windows_own_records_not_catch_up_from_before():
    tl = Timeline()
    # a backlog of 4,000 from before the window becomes visible inside it
    _feed(tl, {A: 1000, A + 1: 1000}, {A: 1000, A + 1: 1000}, {A: 3000, A + 1: 3000})
    w = tl.judge(A, A + 2, 1000.0, SLO, (A + 5) * NS)
    assert w.achieved_tps == 1000.0


def test_sent_per_second_is_by_the_clock_not_by_intended_second():
    tl = Timeline()
    # a generator 1 s behind: what was due in A .. A+3 went out in A+1 .. A+4
    _feed(tl, {A + i: 1000 for i in range(4)}, {}, {},
          sent_at={A + 1: 500, A + 2: 1000, A + 3: 1000, A + 4: 1500})
    w, _ = tl.window(A, A + 4)
    assert w.sent == 4000 and w.sent_tps == 2500 / 4


def test_a_window_that_starts_drained_is_not_failed_for_what_it_keeps_in_flight():
    tl = Timeline()
    # nothing before A; 400/s with ~0.6 s of latency: 240 in flight at every boundary
    secs = range(A, A + 4)
    visible = {A: 160, A + 1: 400, A + 2: 400, A + 3: 400, A + 4: 240}
    _feed(tl, {s: 400 for s in secs}, {s: 400 for s in secs}, visible, lat_us=600_000)
    assert tl.backlog(A - 1) == 0 and tl.backlog(A) == 240
    w = tl.judge(A, A + 4, 400.0, Slo(p99_ms=60_000, p999_ms=60_000), (A + 30) * NS)
    assert (w.lag_start, w.lag_end) == (240, 240) and w.checks.throughput and w.passed
