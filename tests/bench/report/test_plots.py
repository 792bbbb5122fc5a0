"""The PNG plots of a saved result render from the typed result (no broker needed)."""

from pathlib import Path

import msgspec

from bench.report.plots import plot_compare, plot_result
from bench.report.result import FaultEvent, read_result

RESULT = Path(__file__).parent / "data" / "peak-no-rate-held.json"
PNG = b"\x89PNG\r\n\x1a\n"


def test_a_rate_search_plots_its_timeline_and_its_steps(tmp_path):
    result = read_result(RESULT)
    run = msgspec.structs.replace(result.runs[0], faults=[FaultEvent(t=0.0, at_s=1.0, kill="scorer", pid=7)])
    paths = plot_result(msgspec.structs.replace(result, runs=[run]), tmp_path)
    assert [p.name for p in paths] == ["fraudstream-timeline.png", "fraudstream-rate-search.png"]
    assert all(p.read_bytes().startswith(PNG) for p in paths)


def test_two_results_plot_side_by_side(tmp_path):
    result = read_result(RESULT)
    run = result.runs[0]
    peak = run.steps[-1]      # as if the lowest rate had held: a headline with latencies
    run = msgspec.structs.replace(run, headline=msgspec.structs.replace(
        run.headline, sustained_tps=peak.asked_tps, e2e=peak.e2e))
    held = msgspec.structs.replace(result, runs=[run])
    path = plot_compare(result, held, tmp_path / "ab.png")
    assert path.read_bytes().startswith(PNG)
