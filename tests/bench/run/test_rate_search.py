"""The `rate: max` search on a simulated clock: which rates it asks for, in what order, and
which one it reports as the peak, for a pipeline that holds the SLO up to a known rate."""

import math
from types import SimpleNamespace

import pytest

from bench.measure import histogram
from bench.run import phases
from bench.load.schedule import NS
from bench.report.result import Checks, Window
from bench.spec.scenario import decode_scenario

SCENARIO = """
name: search
warmup_s: 2
rate: {{profile: max, start_tps: {start}, factor: 2, step_s: 4, settle_s: 1, refine: 2, max_tps: {top},
        repeat: {repeat}, confirm_s: {confirm}, confirm_steps: {steps}}}
slo: {{p99_ms: 50, p999_ms: 100}}
"""


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def time(self):
        return self.now

    def monotonic(self):
        return self.now

    def time_ns(self):
        return int(self.now * NS)


class Harness:
    """Holds the SLO at rates up to `limit` (in a window longer than 8 s, up to `hold_limit`
    if set: a minute meets what a step escapes); records every plan the search makes."""

    def __init__(self, clock, limit, hold_limit=None):
        self.clock, self.limit, self.plans, self.judged = clock, limit, [], []
        self.hold_limit = hold_limit
        self.limits = None     # a list: one limit per search, in turn (a noisy machine)
        self.timeline = SimpleNamespace(judge=self.judge, total_sent=0, total_scores=0)

    def plan(self, segments, replace=False):
        self.plans.append((list(segments), replace))

    def pump(self, seconds):
        self.clock.now += seconds

    def check_alive(self):
        pass

    def judge(self, a, b, asked_tps, slo, now_ns):
        assert now_ns >= b * NS                   # a window is judged only once it is over
        self.judged.append((a, b))
        long = b - a > 8 and self.hold_limit is not None
        held = asked_tps <= (self.hold_limit if long else self.limit)
        empty = histogram.summary(histogram.new_histogram())
        return Window(seconds=b - a, sent=0, measured=0, sent_tps=0.0, achieved_tps=0.0, e2e=empty,
                      publish_delay=empty, asked_tps=asked_tps, planned=0, unseen=0, judged_e2e=empty,
                      checks=Checks(p99=held, p999=held, rate=True, throughput=True), passed=held)


def _search(monkeypatch, start, limit, top=1e6, repeat=1, confirm=0, limits=None, steps=2,
            hold_limit=None):
    clock = Clock()
    monkeypatch.setattr(phases, "time", clock)
    harness = Harness(clock, limit, hold_limit)
    if limits:
        real_run = phases._Search.run

        def run(search, start, warm):    # each trial meets the machine in another mood
            harness.limit = limits[search.trial]
            return real_run(search, start, warm)
        monkeypatch.setattr(phases._Search, "run", run)
    scenario = decode_scenario(SCENARIO.format(start=start, top=top, repeat=repeat, confirm=confirm,
                                               steps=steps), "search.yaml")
    ctx = phases.Context(harness, scenario, cpu_groups=lambda: {})
    info = phases.run_max(ctx, int(clock.now) + 1)
    return info, harness


def _asked(info):
    return [(s.stage, round(s.asked_tps)) for s in info.steps]


def test_ascends_until_a_miss_then_bisects_between_the_last_pass_and_the_miss(monkeypatch):
    info, harness = _search(monkeypatch, start=1000, limit=5000)
    hi = math.sqrt(4000 * 8000)                   # 5,657: a miss
    lo = math.sqrt(4000 * hi)                     # 4,757: a pass
    assert _asked(info) == [("ascend", 1000), ("ascend", 2000), ("ascend", 4000), ("ascend", 8000),
                            ("refine", round(hi)), ("refine", round(lo))]
    assert info.peak.asked_tps == pytest.approx(lo)
    # the ascending steps run back to back, each judged after its settle time
    (a0, b0), (a1, b1) = harness.judged[:2]
    assert (b0 - a0, a1 - a0) == (3, 4)


def test_a_missed_first_step_steps_down_then_bisects(monkeypatch):
    info, _ = _search(monkeypatch, start=8000, limit=5000)
    assert _asked(info)[:2] == [("ascend", 8000), ("descend", 4000)]
    assert [stage for stage, _ in _asked(info)[2:]] == ["refine", "refine"]
    assert info.peak.asked_tps == pytest.approx(math.sqrt(4000 * math.sqrt(4000 * 8000)))


def test_no_rate_holding_the_slo_means_no_peak(monkeypatch):
    info, _ = _search(monkeypatch, start=8000, limit=0)
    assert _asked(info) == [("ascend", 8000), ("descend", 4000), ("descend", 2000),
                            ("descend", 1000), ("descend", 500)]
    assert info.peak is None


def test_the_search_stops_at_max_tps_with_the_highest_step_as_the_peak(monkeypatch):
    info, harness = _search(monkeypatch, start=1000, limit=1e9, top=4000)
    assert _asked(info) == [("ascend", 1000), ("ascend", 2000), ("ascend", 4000)]
    assert info.peak.asked_tps == 4000
    assert all(seg[2] <= 4000 for segs, _ in harness.plans for seg in segs)   # never above max_tps


def test_the_search_runs_repeat_times_and_holds_the_median_peak_for_the_confirmation(monkeypatch):
    # three trials on a machine that holds 5,000, then 3,000, then 9,000 tx/s
    info, harness = _search(monkeypatch, start=1000, limit=None, repeat=3, confirm=60,
                            limits=[5000, 3000, 9000])
    assert [s.trial for s in info.steps] == sorted(s.trial for s in info.steps)
    assert {s.trial for s in info.steps} == {0, 1, 2}
    p0, p1, p2 = info.peaks
    assert p1 < p0 < p2 and p0 <= 5000 and p1 <= 3000 and p2 <= 9000
    c = info.confirmation
    assert c.stage == "confirm" and c.asked_tps == p0 and c.trial is None
    assert c.seconds == 60                                   # held a minute, not one step
    assert info.peak.asked_tps == p0                        # the median trial's peak step
    # every bracket: a pass and the lowest miss above it
    assert [lo for lo, _ in info.brackets] == info.peaks
    assert all(hi > lo for lo, hi in info.brackets)
    # each later trial and the confirmation start on a drained pipeline, after the last plan
    assert [s.drained for s in info.steps if s.stage == "refine"] == [True] * 6
    assert c.drained is True


def test_a_step_after_a_drain_that_timed_out_says_so(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(phases, "time", clock)
    harness = Harness(clock, 5000)
    harness.timeline.total_sent = 10     # never all visible: every drain times out
    scenario = decode_scenario(SCENARIO.format(start=1000, top=1e6, repeat=1, confirm=0, steps=2), "x.yaml")
    info = phases.run_max(phases.Context(harness, scenario, cpu_groups=lambda: {}), int(clock.now) + 1)
    assert [s.drained for s in info.steps] == [None] * 4 + [False, False]


@pytest.mark.parametrize("peaks, median", [
    ([], None), ([None], None), ([3.0], 3.0), ([5.0, 3.0, 9.0], 5.0), ([5.0, None, 9.0], 5.0),
    ([None, None, 9.0], None), ([4.0, 8.0], 4.0), ([1.0, 2.0, 3.0, 4.0, 5.0], 3.0),
])
def test_the_median_peak_counts_a_trial_without_a_peak_as_the_lowest(peaks, median):
    assert phases.median_peak(peaks) == median


BURST = """
name: burst
duration_s: 20
warmup_s: 5
drain_s: 30
rate: {profile: bursts, base_tps: 5000, burst_tps: 30000, burst_s: 3, every_s: 10}
"""


class Draining(Harness):
    """Records become visible `lag_s` after the warm-up's plan ends."""

    def __init__(self, clock, lag_s):
        super().__init__(clock, 1e9)
        self.lag_s, self.visible_at = lag_s, None
        self.timeline.total_sent, self.timeline.total_scores = 1, 0

    def plan(self, segments, replace=False):
        super().plan(segments, replace)
        if len(self.plans) == 1:       # the warm-up: visible lag_s after it ends
            start, duration, _ = segments[0]
            self.visible_at = (start + duration) / NS + self.lag_s

    def pump(self, seconds):
        super().pump(seconds)
        if self.visible_at is not None and self.clock.now >= self.visible_at:
            self.timeline.total_scores = 1


@pytest.mark.parametrize("lag_s, drained", [(3.0, True), (60.0, False)])
def test_a_burst_run_warms_up_at_its_base_rate_and_measures_from_a_drained_pipeline(monkeypatch, lag_s, drained):
    clock = Clock()
    monkeypatch.setattr(phases, "time", clock)
    harness = Draining(clock, lag_s)
    ctx = phases.Context(harness, decode_scenario(BURST, "burst.yaml"), cpu_groups=lambda: {})
    t0 = int(clock.now) + 1
    info = phases.run_fixed(ctx, t0)
    (warm, _), (measure, replace) = harness.plans
    assert warm == [(t0 * NS, 5 * NS, 5000)]                      # the base rate, not the burst
    assert replace and measure[0][2] == 30000                       # the plan itself starts with a burst
    # the measurement starts once the warm-up's records are all visible (or drain_s ran out)
    expected_start = t0 + 5 + (lag_s if drained else 30)
    assert measure[0][0] / NS >= expected_start and info.t_measure == measure[0][0] // NS
    assert info.drained is drained
    assert info.t_end - info.t_measure == 20
