"""A missed confirmation steps down: which rates are held for confirm_s after the median peak's
hold misses, which one is the headline, and the exit code (simulated clock, no Kafka)."""

import math

import msgspec
import pytest

from bench.report.result import read_result
from bench.report.text import EXIT_OK, EXIT_SLO, exit_code
from bench.run.orchestrate import judge_run
from bench.run.phases import next_hold
from tests.bench.report.test_report_text import RESULT
from tests.bench.run.test_rate_search import _search

# start 1,000, factor 2, refine 2, a pipeline holding 5,000 in a step: the search's peak
PEAK = math.sqrt(4000 * math.sqrt(4000 * 8000))       # 4,757


def _holds(info):
    holds = [info.confirmation, *info.step_downs]
    assert all(h.seconds == 60 and h.drained for h in holds)
    assert [h.stage for h in holds] == ["confirm"] + ["step down"] * len(info.step_downs)
    return [(round(h.asked_tps), h.passed) for h in holds]


def _exit(info):
    """What `bench run` exits with for this search, exactly once (as run_scenario decides)."""
    headline, slo_passed = judge_run(info, None)
    result = read_result(RESULT)
    run = msgspec.structs.replace(result.runs[0], headline=headline, slo_passed=slo_passed,
                                  passed=slo_passed and result.runs[0].verdict.exactly_once)
    assert run.verdict.exactly_once
    return headline, exit_code(msgspec.structs.replace(result, runs=[run], passed=run.passed))


def test_a_confirmation_that_holds_is_the_only_hold(monkeypatch):
    info, _ = _search(monkeypatch, start=1000, limit=5000, confirm=60)
    assert _holds(info) == [(round(PEAK), True)] and info.step_downs == []
    headline, code = _exit(info)
    assert headline.sustained_tps == PEAK and headline.confirmed is True and code == EXIT_OK


def test_a_missed_confirmation_steps_down_and_the_highest_hold_that_held_is_the_headline(monkeypatch):
    # the minute holds 3,500 and not the median peak: down factor**0.5, then halfway back up
    info, _ = _search(monkeypatch, start=1000, limit=5000, confirm=60, hold_limit=3500)
    down = PEAK / math.sqrt(2)                                  # 3,364: held
    mid = math.sqrt(PEAK * down)                                # 4,000: missed
    assert _holds(info) == [(round(PEAK), False), (round(down), True), (round(mid), False)]
    headline, code = _exit(info)
    assert headline.sustained_tps == pytest.approx(down) and headline.asked_tps == pytest.approx(down)
    assert headline.confirmed is False                           # the median peak's own hold
    assert headline.peak_median_tps == PEAK
    assert headline.bracket_tps == pytest.approx((down, mid))   # where the minute's rate lies
    assert code == EXIT_OK


def test_the_hold_halfway_back_up_is_the_headline_when_it_holds(monkeypatch):
    info, _ = _search(monkeypatch, start=1000, limit=5000, confirm=60, hold_limit=4100)
    assert [held for _, held in _holds(info)] == [False, True, True]
    headline, code = _exit(info)
    assert headline.sustained_tps == pytest.approx(math.sqrt(PEAK * PEAK / math.sqrt(2)))
    assert headline.bracket_tps[1] == PEAK and code == EXIT_OK


def test_holds_that_all_miss_sustain_nothing_and_exit_3(monkeypatch):
    info, _ = _search(monkeypatch, start=1000, limit=5000, confirm=60, hold_limit=0)
    assert _holds(info) == [(round(PEAK), False), (round(PEAK / 2 ** 0.5), False), (round(PEAK / 2), False)]
    headline, code = _exit(info)
    assert headline.sustained_tps is None and headline.confirmed is False and code == EXIT_SLO
    assert headline.asked_tps == PEAK          # the figures shown are the median peak's hold


@pytest.mark.parametrize("steps", [0, 1, 3])
def test_the_step_downs_are_bounded_by_confirm_steps(monkeypatch, steps):
    info, _ = _search(monkeypatch, start=1000, limit=5000, confirm=60, hold_limit=0, steps=steps)
    assert [r for r, _ in _holds(info)] == [round(PEAK / 2 ** (k / 2)) for k in range(steps + 1)]


def test_no_confirmation_holds_nothing_and_the_median_peak_is_the_headline(monkeypatch):
    info, _ = _search(monkeypatch, start=1000, limit=5000, confirm=0, hold_limit=0)
    assert info.confirmation is None and info.step_downs == []
    headline, code = _exit(info)
    assert headline.sustained_tps == PEAK and headline.confirmed is None and code == EXIT_OK


def test_no_rate_held_in_the_search_holds_nothing_and_exits_3(monkeypatch):
    info, _ = _search(monkeypatch, start=8000, limit=0, confirm=60)
    assert info.confirmation is None and info.step_downs == []
    headline, code = _exit(info)
    assert headline.sustained_tps is None and code == EXIT_SLO


@pytest.mark.parametrize("holds, rate", [
    ([], None),
    ([(1000.0, True)], None),                                  # the median peak held
    ([(1000.0, False)], 1000 / 1.5 ** 0.5),
    ([(1000.0, False), (900.0, False)], 900 / 1.5 ** 0.5),     # below the lowest miss
    ([(1000.0, False), (800.0, True)], math.sqrt(800_000)),    # between the pass and the miss
    ([(1000.0, False), (800.0, True), (900.0, False)], math.sqrt(720_000)),
    ([(1000.0, False), (800.0, True), (900.0, True)], math.sqrt(900_000)),
])
def test_the_next_hold_is_below_every_miss_and_above_every_pass(holds, rate):
    assert next_hold(holds, 1.5) == (None if rate is None else pytest.approx(rate))
