"""`bench run` end to end against the real broker and the real scoring service: the report's
counts equal what was sent, and the verdict is exactly-once, also with a worker killed (whose
partitions' restores the report shows)."""

import msgspec
import pytest

from bench.report.result import read_result, write_result
from bench.report.text import exit_code, print_result
from bench.run.orchestrate import RunOptions, run_scenario
from bench.spec.scenario import decode_scenario

pytestmark = pytest.mark.kafka

BASE = """
name: {name}
duration_s: {duration}
warmup_s: 1
drain_s: 60
rate: {{profile: constant, tps: {tps}}}
topology: {{partitions: 6, scoring_processes: 2}}
traffic: {{seed: 11, pool: 5000, fraud_rate: 0.05}}
slo: {{p99_ms: 60000, p999_ms: 60000, min_rate_ratio: 0.5}}
"""


def _run(tmp_path, kafka_bootstrap, text):
    scenario = decode_scenario(text, "test.yaml")
    result = run_scenario(scenario, RunOptions(bootstrap=kafka_bootstrap, out_dir=tmp_path))
    write_result(result, tmp_path / "result.json")
    assert read_result(tmp_path / "result.json") == result     # the file reads back as written
    print_result(result)
    return result


def test_short_run_counts_what_was_sent_exactly_once(tmp_path, kafka_bootstrap):
    result = _run(tmp_path, kafka_bootstrap, BASE.format(name="e2e", duration=4, tps=400))
    run = result.runs[0]
    v = run.verdict
    assert v.sent > 1600                          # 5 s of schedule plus start-up probes
    assert v.scored_unique == v.sent == v.scored_records
    assert (v.missing, v.duplicated, v.unexpected) == (0, 0, 0)
    assert v.exactly_once and v.drained and v.delivery_errors == 0
    assert v.alerts == v.detection.flagged
    assert result.embedded_broker is False and "dirty_expire_centisecs" in result.machine.vm_writeback
    _assert_writeback_hint_only_for_an_embedded_broker(result)
    assert run.window.measured == run.window.sent == 1600
    # the two stages split every measured record's latency at its output's timestamp
    e2e, stages = run.window.e2e, run.window.e2e_stages
    assert run.headline.e2e_stages == stages
    for part in (stages.until_scored, stages.scored_to_visible):
        assert part.count == 1600 and 0 < part.p50_ms <= part.max_ms <= e2e.max_ms * 1.001
    # the service's memory, from the start of measuring until the drain: a supervisor and a
    # worker with the model loaded are well over 100 MB
    memory = run.scorer_memory
    assert memory is not None and 100 < memory.start_mb <= memory.peak_mb and memory.end_mb <= memory.peak_mb
    assert memory.scored >= 1600, memory
    assert exit_code(result) == 0 and (tmp_path / "result.json").stat().st_size > 0


def test_a_killed_worker_is_reported_and_the_run_still_verifies(tmp_path, kafka_bootstrap):
    text = BASE.format(name="kill", duration=6, tps=400) + "faults: [{at_s: 2, kill: scorer}]\n"
    result = _run(tmp_path, kafka_bootstrap, text)
    run = result.runs[0]
    (kill,) = run.faults
    assert kill.kill == "scorer" and kill.pid > 0 and run.workers_restarted == 1
    # each partition the killed worker held came back: restored from the changelog (state is
    # on by default), then its first batch committed, by another process, within the run
    assert kill.restores, "the killed worker held no partition by the service's log"
    for r in kill.restores:
        assert r.pid not in (None, kill.pid) and r.records is not None and r.restore_s >= 0, r
        assert 0 < r.assigned_after_s <= r.restored_after_s <= r.first_commit_after_s < 60, r
    v = run.verdict
    assert v.exactly_once, v
    assert v.scored_unique == v.sent and v.missing == 0 and v.duplicated == 0


def _assert_writeback_hint_only_for_an_embedded_broker(result):
    from rich.console import Console

    from bench.report.result import BrokerData

    machine = msgspec.structs.replace(result.machine, vm_writeback={"dirty_expire_centisecs": 3000})
    for embedded, in_memory, expected in ((True, False, True), (False, False, False), (True, True, False)):
        console = Console(record=True, width=200)
        print_result(msgspec.structs.replace(result, machine=machine, embedded_broker=embedded,
                                             broker_data=BrokerData(dir="", in_memory=in_memory)), console)
        assert ("vm.dirty_expire_centisecs=300" in console.export_text()) is expected


def test_embedded_run_warms_the_local_broker_and_records_where_its_data_is(tmp_path, kafka_bootstrap):
    """No --bootstrap: the run finds the local broker (the test session's), loads it until its
    JIT compiler settles, and records whether the broker's logs are in memory."""
    from bench.broker import find_running
    from bench.run.jitwarm import MAX_WARM_S

    scenario = decode_scenario(BASE.format(name="embedded", duration=2, tps=400), "test.yaml")
    result = run_scenario(scenario, RunOptions(out_dir=tmp_path))
    print_result(result)
    cluster = find_running()
    assert result.embedded_broker is True and result.bootstrap == cluster.bootstrap == kafka_bootstrap
    assert result.broker_data.in_memory == cluster.data_in_memory
    warm = result.runs[0].broker_warmup
    assert warm is not None and warm.compiler_cpu_s >= 0
    # only the time cap ends a warm-up whose compiler has not settled
    assert warm.settled or warm.seconds >= MAX_WARM_S
    assert warm.seconds <= MAX_WARM_S + 5
    v = result.runs[0].verdict
    assert v.exactly_once and v.scored_unique == v.sent > 0
    # the local broker's GC pauses inside the 2 s window, read from its gc.log
    gc = result.runs[0].headline.broker_gc
    assert gc is not None and 0 <= gc.total_ms <= 2000
    assert abs(gc.share - gc.total_ms / 2000) < 1e-12


def test_both_designs_in_one_run_each_verified_and_compared_as_a_ratio(tmp_path, kafka_bootstrap):
    """The seed-vs-fraudstream layout, short and slow: the seed's per-message loop and
    fraudstream get the same traffic, each is checked on its own, and the result carries
    the ratio of their rates."""
    text = BASE.format(name="versus", duration=3, tps=100) + "pipeline: [seed-baseline, fraudstream]\n"
    result = _run(tmp_path, kafka_bootstrap, text)
    runs = result.runs
    assert [r.pipeline for r in runs] == ["seed-baseline", "fraudstream"]
    assert len({tuple(r.topics) for r in runs}) == 2          # each on topics of its own
    for run in runs:
        v = run.verdict
        assert v.exactly_once and v.scored_unique == v.sent > 300, run.pipeline
    c = result.comparison
    a, b = (r.headline.sustained_tps for r in runs)
    assert c.pipelines == ["seed-baseline", "fraudstream"] and c.ratio == pytest.approx(b / a)


SEARCH = """
name: search
warmup_s: 1
drain_s: 60
rate: {profile: max, start_tps: 200, factor: 2, max_tps: 800, step_s: 4, settle_s: 1, refine: 0,
       repeat: 2, confirm_s: 4}
topology: {partitions: 6, scoring_processes: 2}
traffic: {seed: 12, pool: 5000}
slo: {p99_ms: 60000, p999_ms: 60000, min_rate_ratio: 0.5}
"""


def test_a_repeated_search_reports_every_trial_and_confirms_the_median_peak(tmp_path, kafka_bootstrap):
    """Two searches that reach max_tps, then the median held on a drained pipeline: every
    step of both trials in the result, the bracket open above, the confirmation a window of
    its own with the lag at both ends, and the whole run still exactly once."""
    result = _run(tmp_path, kafka_bootstrap, SEARCH)
    run = result.runs[0]
    assert [(s.trial, round(s.asked_tps)) for s in run.steps] == [
        (0, 200), (0, 400), (0, 800), (1, 200), (1, 400), (1, 800)]
    h = run.headline
    assert h.peaks_tps == [800.0, 800.0] and h.peak_median_tps == h.peak_min_tps == 800.0
    assert h.bracket_tps == (800.0, None)                  # max_tps held: nothing above missed
    c = run.confirmation
    assert c.stage == "confirm" and c.asked_tps == 800.0 and c.seconds == 4 and c.drained is True
    assert c.passed and h.confirmed is True and h.sustained_tps == 800.0
    assert run.step_downs == []                            # held: nothing to step down from
    assert c.lag_start is not None and c.lag_end is not None and c.sent_tps > 0
    assert c.measured + c.unseen == c.planned >= 4 * 800 and h.judged_e2e == c.judged_e2e
    assert run.verdict.exactly_once and exit_code(result) == 0
