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
rate: {{profile: max, start_tps: {start}, factor: 2, step_s: 4, settle_s: 1, refine: 2, max_tps: {top}}}
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
    """Holds the SLO at rates up to `limit`; records every plan the search makes."""

    def __init__(self, clock, limit):
        self.clock, self.limit, self.plans, self.judged = clock, limit, [], []
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
        held = asked_tps <= self.limit
        empty = histogram.summary(histogram.new_histogram())
        return Window(seconds=b - a, sent=0, measured=0, sent_tps=0.0, achieved_tps=0.0, e2e=empty,
                      publish_delay=empty, asked_tps=asked_tps, planned=0, unseen=0, judged_e2e=empty,
                      checks=Checks(p99=held, p999=held, rate=True, throughput=True), passed=held)


def _search(monkeypatch, start, limit, top=1e6):
    clock = Clock()
    monkeypatch.setattr(phases, "time", clock)
    harness = Harness(clock, limit)
    scenario = decode_scenario(SCENARIO.format(start=start, top=top), "search.yaml")
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
