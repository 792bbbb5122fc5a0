"""The exactly-once verdict from sequence numbers, and the SLO judgement of a window."""

import numpy as np

from bench.measure import histogram
from bench.load.header import SEQ_BITS
from bench.spec.scenario import Slo
from bench.measure.verdict import verdict
from bench.measure.timeline import Timeline

P1 = 1 << SEQ_BITS


def _v(scores, alerts=(), flagged=None, sent=None, positives=()):
    scores = np.array(scores, dtype=np.int64)
    flagged = np.zeros(len(scores), bool) if flagged is None else np.array(flagged, bool)
    return verdict(sent or {0: 3, 1: 2}, scores, flagged, np.array(alerts, np.int64),
                   np.array(positives, np.int64))


def test_every_record_once_is_exactly_once():
    v = _v([0, 1, 2, P1, P1 + 1])
    assert v.exactly_once and v.missing == v.duplicated == v.unexpected == 0


def test_missing_duplicated_and_unexpected_are_counted():
    v = _v([0, 0, 2, P1, P1 + 7, 5 * P1])
    assert not v.exactly_once
    assert (v.missing, v.duplicated, v.unexpected) == (2, 1, 2)


def test_alerts_must_match_the_flagged_scores_once():
    ok = _v([0, 1, 2, P1, P1 + 1], alerts=[1], flagged=[0, 1, 0, 0, 0], positives=[1, P1])
    assert ok.exactly_once
    assert ok.detection.precision == 1.0 and ok.detection.recall == 0.5
    dup = _v([0, 1, 2, P1, P1 + 1], alerts=[1, 1], flagged=[0, 1, 0, 0, 0])
    assert not dup.exactly_once and dup.alert_duplicates == 1
    stray = _v([0, 1, 2, P1, P1 + 1], alerts=[2], flagged=[0, 1, 0, 0, 0])
    assert stray.alerts_not_flagged == 1 and stray.flagged_without_alert == 1


def _blob(values):
    h = histogram.new_histogram()
    histogram.record_array(h, np.array(values))
    return histogram.encode(h)


def _sink_blobs(e2e_us, n):
    """What a sink ticks for n records: end to end, until scored (60%), scored to visible."""
    return (_blob([e2e_us] * n), _blob([e2e_us * 6 // 10] * n), _blob([e2e_us * 4 // 10] * n))


def test_judge_counts_unseen_records_as_late():
    tl = Timeline()
    slo = Slo(p99_ms=50, p999_ms=100, min_rate_ratio=0.95)
    tl.producer_tick({100: (1000, _blob([10] * 1000))})
    tl.sink_tick(0, {100: _sink_blobs(5_000, 1000)}, {100: 1000}, 1000, 0)
    ok = tl.judge(100, 101, 1000, slo, now_ns=105 * 10**9)
    assert ok.passed and abs(ok.e2e.p99_ms - 5.0) < 0.01
    # 20 of 1000 never visible: the pipeline cannot pass by having nothing to show
    tl2 = Timeline()
    tl2.producer_tick({100: (1000, _blob([10] * 1000))})
    tl2.sink_tick(0, {100: _sink_blobs(5_000, 980)}, {100: 980}, 980, 0)
    late = tl2.judge(100, 101, 1000, slo, now_ns=105 * 10**9)
    assert late.unseen == 20 and not late.checks.p99 and late.judged_e2e.p99_ms >= 3900


def test_judge_counts_records_the_generator_never_sent():
    """A generator that falls behind cannot shrink the window: the schedule says 1000."""
    tl = Timeline()
    slo = Slo(p99_ms=50, p999_ms=100, min_rate_ratio=0.95)
    tl.producer_tick({100: (500, _blob([10] * 500))})
    tl.sink_tick(0, {100: _sink_blobs(5_000, 500)}, {100: 500}, 500, 0)
    w = tl.judge(100, 101, 1000, slo, now_ns=102 * 10**9)
    assert w.planned == 1000 and w.unseen == 500
    assert not w.passed and not w.checks.rate


def test_window_splits_end_to_end_into_its_two_stages():
    tl = Timeline()
    tl.producer_tick({100: (1000, _blob([10] * 1000)), 101: (1000, _blob([10] * 1000))})
    tl.sink_tick(0, {100: _sink_blobs(5_000, 1000)}, {100: 1000}, 1000, 0)
    tl.sink_tick(1, {101: _sink_blobs(20_000, 1000)}, {101: 1000}, 2000, 0)
    first = tl.stage_summaries(100, 101)
    assert first.until_scored.count == first.scored_to_visible.count == 1000
    assert abs(first.until_scored.p50_ms - 3.0) < 0.01
    assert abs(first.scored_to_visible.p50_ms - 2.0) < 0.01
    both = tl.stage_summaries(100, 102)
    assert both.until_scored.count == 2000 and abs(both.until_scored.max_ms - 12.0) < 0.01


def test_detection_per_pattern():
    """Recall per pattern is its own share flagged; precision per pattern counts every
    flagged legit record against it."""
    from bench.load import synth
    from bench.measure.verdict import detection
    from bench.report.result import PatternDetection

    ctb, micro = synth.CARD_TESTING_BURST, synth.MICRO
    positives = np.array([1, 2, 3, 4, 10, 11], np.int64)
    patterns = np.array([ctb, ctb, ctb, ctb, micro, micro], np.int8)
    flagged = np.array([1, 2, 3, 10, 50], np.int64)        # 50 is legit
    d = detection(flagged, positives, patterns)
    assert d.true_positives == 4 and d.false_positives == 1
    assert d.precision == 4 / 5 and d.recall == 4 / 6
    assert set(d.by_pattern) == {"card_testing_burst", "micro"}
    assert d.by_pattern["card_testing_burst"] == PatternDetection(
        positives_sent=4, true_positives=3, recall=0.75, precision=0.75)
    assert d.by_pattern["micro"].recall == 0.5 and d.by_pattern["micro"].precision == 0.5
    assert detection(flagged, positives).by_pattern is None
