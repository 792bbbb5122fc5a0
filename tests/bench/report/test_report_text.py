"""The printed report of a rate search, from a real `bench run scenarios/peak.yaml` result
(trimmed: 3 per-second rows, no spectra) in which no rate held the SLO."""

from pathlib import Path

import msgspec
from rich.console import Console

from bench.report.result import Latency, read_result
from bench.report.text import print_result

RESULT = Path(__file__).parent / "data" / "peak-no-rate-held.json"


def _printed(result) -> list[str]:
    console = Console(record=True, width=140, highlight=False)
    print_result(result, console)
    return console.export_text().splitlines()


def _row(lines: list[str], asked: str) -> list[str]:
    (line,) = [ln for ln in lines if f"│ {asked} " in ln]
    return [cell.strip() for cell in line.strip("│").split("│")]


def test_each_search_step_shows_how_long_the_broker_stood_still_for_gc():
    lines = _printed(read_result(RESULT))
    assert any("GC ms" in ln for ln in lines)
    assert _row(lines, "5,000")[-2:] == ["77.9", "miss"]     # one 77.9 ms pause in that step
    assert _row(lines, "3,333")[-2:] == ["-", "miss"]        # none
    assert any("no rate tried held the SLO: the lowest, 988/s, had p99 63.4 ms" in ln for ln in lines)


def test_results_without_gc_figures_print_without_the_column():
    raw = msgspec.json.decode(RESULT.read_bytes())
    for step in raw["runs"][0]["steps"]:
        del step["broker_gc"]
    result = msgspec.json.decode(msgspec.json.encode(raw), type=type(read_result(RESULT)))
    assert result.runs[0].steps[0].broker_gc is None     # absent reads as "not measured"
    lines = _printed(result)
    assert not any("GC ms" in ln for ln in lines)
    assert _row(lines, "5,000")[-1] == "miss"


def _with_headline(result, tps, p99, workers):
    replace = msgspec.structs.replace
    e2e = Latency(count=1000, mean_ms=25.0, p50_ms=20.0, p90_ms=None, p99_ms=p99, p999_ms=None, max_ms=None)
    topology = replace(result.scenario.topology, scoring_processes=workers)
    run = replace(result.runs[0], headline=replace(result.runs[0].headline, sustained_tps=tps, e2e=e2e))
    return replace(result, scenario=replace(result.scenario, topology=topology), runs=[run])


def test_two_results_side_by_side_with_b_over_a_ratios():
    from bench.report.text import print_comparison

    base = read_result(RESULT)
    a, b = _with_headline(base, 1000.0, 40.0, 2), _with_headline(base, 2500.0, 30.0, 6)
    console = Console(record=True, width=140, highlight=False)
    print_comparison(a, b, console)
    lines = console.export_text().splitlines()
    assert _row(lines, "sustained tx/s")[1:] == ["1,000", "2,500", "2.50"]
    assert _row(lines, "e2e p99 ms")[1:] == ["40.0", "30.0", "0.75"]
    assert _row(lines, "scoring processes")[1:] == ["2", "6", "3.00"]
    assert _row(lines, "e2e p99.9 ms")[1:] == ["-", "-", "-"]     # absent in both: no ratio


def test_a_file_or_pipe_gets_the_whole_rate_search_table(monkeypatch):
    """Printed to a file (`make run | tee`, a CI log, `bench report ... > file`), rich assumed 80
    columns and cut every cell of a multi-trial search with GC to `1,…`."""
    import io

    from bench.report.text import report_console

    monkeypatch.delenv("COLUMNS", raising=False)
    raw = msgspec.json.decode(RESULT.read_bytes())
    for i, step in enumerate(raw["runs"][0]["steps"]):   # three trials: the trial column too
        step["trial"] = i % 3
        step["lag_start"], step["lag_end"] = 0, 28_420
    result = msgspec.json.decode(msgspec.json.encode(raw), type=type(read_result(RESULT)))
    out = io.StringIO()
    print_result(result, report_console(out))
    text = out.getvalue()
    assert "trial" in text and "GC ms" in text and "28,420" in text
    assert "…" not in text, text
    narrow = io.StringIO()
    print_result(result, Console(file=narrow, width=80, highlight=False))
    assert "…" in narrow.getvalue()   # what an 80-column file got before


def test_the_scorer_memory_line_shows_growth_per_million_records():
    from bench.report.result import ScorerMemory

    result = read_result(RESULT)
    assert result.runs[0].scorer_memory is None   # a result from before memory was reported
    assert not any("scorer memory" in ln for ln in _printed(result))
    memory = ScorerMemory(start_mb=390.4, peak_mb=412.0, end_mb=398.6, scored=3_200_000)
    run = msgspec.structs.replace(result.runs[0], scorer_memory=memory)
    lines = _printed(msgspec.structs.replace(result, runs=[run]))
    assert ("scorer memory (RSS): 390 MB when measuring began, peak 412, 399 after the drain: "
            "+8 MB over 3,200,000 records scored (+2.6 MB per million)") in lines
    killed = msgspec.structs.replace(run, workers_restarted=2)   # the run's own count of scorer kills
    text = " ".join(" ".join(_printed(msgspec.structs.replace(result, runs=[killed]))).split())
    assert "+8 MB over 3,200,000 records scored; 2 scoring processes killed and restarted meanwhile" in text


def test_a_short_run_shows_its_growth_without_a_rate_per_million():
    from bench.report.result import ScorerMemory
    from bench.report.text import memory_text

    text = memory_text(ScorerMemory(start_mb=553.0, peak_mb=560.2, end_mb=560.0, scored=2_049))
    assert text.endswith("+7 MB over 2,049 records scored"), text


def test_memory_growth_with_killed_scorers_says_their_restarts_are_in_it_and_gives_no_rate():
    from bench.report.result import ScorerMemory
    from bench.report.text import memory_text

    memory = ScorerMemory(start_mb=1_334.0, peak_mb=1_399.0, end_mb=1_399.0, scored=1_226_308)
    assert "MB per million" in memory_text(memory)
    text = memory_text(memory, replaced=3)
    assert "MB per million" not in text, text
    assert text.endswith("+65 MB over 1,226,308 records scored; 3 scoring processes killed and restarted "
                         "meanwhile, each restart's start-up counted in it"), text
    assert "; 1 scoring process killed" in memory_text(memory, replaced=1)
