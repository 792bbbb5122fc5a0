"""Ratios as ranges from the search brackets, the repeated searches' peaks, the confirmation,
and the table the verdict was judged on, as `bench run` prints them."""

import msgspec
import pytest
from rich.console import Console

from bench.report.ratio import ratio_range, ratio_text
from bench.report.result import Comparison, Latency, read_result
from bench.report.text import print_comparison, print_result
from tests.bench.report.test_report_text import RESULT, _row

replace = msgspec.structs.replace


@pytest.mark.parametrize("a, b, text", [
    ((238, 283), (86_108, 102_400), "300–440x"),     # the README's "362.1x": 304-430, outwards
    ((1000, 1500), (2000, 3000), "1.3–3.0x"),
    ((1000, 1000), (2500, 2500), "2.5x"),              # fixed rates: one figure, 2 digits
    ((1000, None), (2000, 3000), "<= 3.0x"),            # A held max_tps: B/A has no lower bound
    ((1000, 1500), (2000, None), ">= 1.3x"),
    (None, (2000, 3000), "-"),
])
def test_a_ratio_of_two_brackets_is_a_range_rounded_outwards(a, b, text):
    assert ratio_text(ratio_range(a, b)) == text


def test_the_range_holds_every_ratio_of_two_rates_inside_the_brackets():
    lo, hi = ratio_range((238, 283), (86_108, 102_400))
    for x in (238, 260, 282.9):
        for y in (86_108, 95_000, 102_399):
            assert lo <= y / x <= hi


def _lines(result) -> list[str]:
    console = Console(record=True, width=160, highlight=False)
    print_result(result, console)
    return console.export_text().splitlines()


def _searched(result, peaks, confirmed):
    """The saved result as if three searches had run and the median was confirmed."""
    run = result.runs[0]
    step = run.steps[-1]
    e2e = Latency(count=900, mean_ms=9.0, p50_ms=8.0, p90_ms=12.0, p99_ms=30.0, p999_ms=40.0, max_ms=50.0)
    judged = replace(e2e, count=1000, p99_ms=45.0, max_ms=4000.0)
    conf = replace(step, stage="confirm", seconds=60, asked_tps=peaks[0], unseen=100, judged_e2e=judged,
                   e2e=e2e, passed=confirmed, lag_start=10, lag_end=30, drained=True)
    h = replace(run.headline, sustained_tps=peaks[0] if confirmed else None, asked_tps=peaks[0],
                achieved_tps=peaks[0], e2e=e2e, judged_e2e=judged, unseen=100, peaks_tps=peaks,
                peak_median_tps=peaks[0], peak_min_tps=min(peaks), peak_max_tps=max(peaks),
                bracket_tps=(min(peaks), 2 * max(peaks)), confirmed=confirmed)
    return replace(result, runs=[replace(run, headline=h, confirmation=conf)])


def test_the_peak_table_is_the_judged_one_with_unseen_records_and_the_peaks_spread():
    lines = _lines(_searched(read_result(RESULT), [2000.0, 1000.0, 3000.0], True))
    text = "\n".join(lines)
    assert "confirmation at the median peak" in text
    # the verdict's figures: 1,000 records counted with the 100 unseen at their age
    row = _row(lines, "end-to-end, 100 unseen at their age")
    assert row[3] == "45.0" and row[5] == "4,000.0"
    assert ("peaks of 3 searches: median 2,000/s, min 1,000/s, max 3,000/s, spread 100% of the "
            "median; rate within [1,000, 6,000); confirmation held") in text
    (confirm,) = [ln for ln in lines if "│ confirm " in ln]
    cells = [c.strip() for c in confirm.strip("│").split("│")]
    assert cells[:2] == ["confirm", "2,000"] and cells[-3:] == ["20", "89.6", "pass"]   # lag +20


def test_a_missed_confirmation_is_printed_and_not_sustained():
    result = _searched(read_result(RESULT), [2000.0, 1000.0, 3000.0], False)
    text = "\n".join(_lines(result))
    assert "confirmation missed" in text and "sustained within the SLO -/s" in text


def test_every_hold_is_printed_and_the_headline_is_the_step_down_that_held():
    """The median peak missed its minute, 1,633/s held it and 1,807/s did not: the table shows
    the three holds with their percentiles and verdicts, the headline the one that held."""
    result = _searched(read_result(RESULT), [2000.0, 1000.0, 3000.0], False)
    run = result.runs[0]
    conf = replace(run.confirmation, judged_e2e=replace(run.confirmation.judged_e2e, p99_ms=55.0))
    lat = replace(conf.judged_e2e, p50_ms=7.0, p99_ms=38.0, p999_ms=61.0)
    held = replace(conf, stage="step down", asked_tps=1633.0, passed=True, judged_e2e=lat, e2e=lat, unseen=0)
    missed = replace(conf, stage="step down", asked_tps=1807.0, judged_e2e=replace(lat, p99_ms=51.5))
    h = replace(run.headline, sustained_tps=1633.0, asked_tps=1633.0, e2e=lat, judged_e2e=lat,
                unseen=0, bracket_tps=(1633.0, 1807.0))
    lines = _lines(replace(result, runs=[replace(run, headline=h, confirmation=conf, slo_passed=True,
                                                 step_downs=[held, missed])]))
    text = "\n".join(lines)
    rows = [[c.strip() for c in ln.strip("│").split("│")] for ln in lines
            if "│ confirm " in ln or "│ step down " in ln]
    # stage, asked, p50, p99, p99.9, verdict
    assert [r[:2] + r[5:8] + r[-1:] for r in rows] == [
        ["confirm", "2,000", "8.00", "55.0", "40.0", "miss"],
        ["step down", "1,633", "7.00", "38.0", "61.0", "pass"],
        ["step down", "1,807", "7.00", "51.5", "61.0", "miss"]]
    stripped = [ln.strip() for ln in lines]
    assert "60 s hold at 1,633/s, a step down" in stripped
    assert "spread 100% of the median; confirmation missed" in text
    assert "step downs (60 s each): 1,633/s held, 1,807/s missed; rate within [1,633, 1,807)" in stripped
    assert "sustained within the SLO 1,633/s" in text and "PASS" in text
    # none held: the bracket is the searches' and stays with them
    h = replace(run.headline, bracket_tps=(1000.0, 6000.0))
    lines = _lines(replace(result, runs=[replace(run, headline=h, confirmation=conf,
                                                 step_downs=[replace(held, passed=False)])]))
    stripped = [ln.strip() for ln in lines]
    assert "spread 100% of the median; rate within [1,000, 6,000); confirmation missed" in "\n".join(lines)
    assert "step downs (60 s each): 1,633/s missed" in stripped
    assert "sustained within the SLO -/s" in "\n".join(lines)


def test_the_comparison_prints_the_range_not_one_ratio():
    base = read_result(RESULT)
    a = _searched(base, [250.0, 238.0, 260.0], True).runs[0]
    b = _searched(base, [90_000.0, 86_108.0, 95_000.0], True).runs[0]
    a = replace(a, pipeline="seed-baseline", headline=replace(a.headline, bracket_tps=(238.0, 283.0)))
    b = replace(b, headline=replace(b.headline, bracket_tps=(86_108.0, 102_400.0)))
    both = replace(base, runs=[a, b], comparison=Comparison(
        pipelines=["seed-baseline", "fraudstream"], sustained_tps=[250.0, 90_000.0], ratio=360.0,
        ratio_range=ratio_range((238.0, 283.0), (86_108.0, 102_400.0))))
    text = "\n".join(_lines(both))
    assert ("fraudstream / seed-baseline sustained rate: [86,108, 102,400) / [238, 283) = 300–440x"
            in text)
    assert "360.0" not in text
    console = Console(record=True, width=160, highlight=False)
    print_comparison(both, both, console)
    # the same rates, each known only within its bracket: not "1.00"
    rows = [ln for ln in console.export_text().splitlines() if "│ sustained tx/s " in ln]
    assert [[c.strip() for c in ln.strip("│").split("│")][1:] for ln in rows] == [
        ["250", "250", "0.8–1.2x"], ["90,000", "90,000", "0.8–1.2x"]]


def test_a_fixed_run_that_started_on_a_backlog_says_so():
    result = read_result(RESULT)
    run = result.runs[0]
    window = replace(run.steps[0], stage=None, drained=False)
    fixed = replace(result, runs=[replace(run, kind="fixed", window=window, steps=None)])
    assert "the measurement started on a backlog" in "\n".join(_lines(fixed))
    ok = replace(result, runs=[replace(run, kind="fixed", window=replace(window, drained=True), steps=None)])
    assert "backlog" not in "\n".join(_lines(ok))
