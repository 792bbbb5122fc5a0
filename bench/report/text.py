"""What `bench run` prints: live progress, the final table, and `bench report A.json
[--compare B.json]` (the result's types and file: bench.report.result).

Exit codes of `bench run`: 0 every SLO held and exactly-once verified; 3 an SLO missed;
4 exactly-once violated (missing, duplicated or unexpected records); 1 the run itself failed.
"""

import os
import statistics

import msgspec
from rich.console import Console
from rich.live import Live
from rich.table import Table

from bench.measure.writeback import writeback_hint
from bench.report.ratio import ratio_range, ratio_text
from bench.report.result import Latency, RunResult, Stages

__all__ = ["LiveProgress", "progress_text", "print_result", "print_comparison", "exit_code", "report_console",
           "snapshot_words", "memory_text",
           "EXIT_OK", "EXIT_SLO", "EXIT_EOS"]

EXIT_OK, EXIT_SLO, EXIT_EOS = 0, 3, 4
# Files and pipes (`make run | tee`, CI logs, `bench report ... > file`) get no terminal width,
# and rich then assumes 80 columns and cuts every cell of the rate search to "1,…": the
# widest table (trials, GC column, five-digit rates and lags) needs ~135.
_FILE_WIDTH = 160


def report_console(file=None) -> Console:
    """The console the final tables go to: the terminal's width, or _FILE_WIDTH when the
    output is a file or a pipe (unless COLUMNS says otherwise)."""
    console = Console(file=file, highlight=False)
    if console.is_terminal or "COLUMNS" in os.environ:
        return console
    return Console(file=file, width=_FILE_WIDTH, highlight=False)


def _ms(x) -> str:
    return "-" if x is None else f"{x:,.1f}" if x >= 10 else f"{x:,.2f}"


def _tps(x) -> str:
    return "-" if x is None else f"{x:,.0f}"


class LiveProgress:
    """A one-line rich live view: phase, elapsed, asked vs achieved rate, p99, lag."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True, highlight=False)
        self._live = Live(console=self.console, refresh_per_second=4, transient=True)

    def __enter__(self):
        self._live.__enter__()
        return self

    def __exit__(self, *exc):
        self._live.__exit__(*exc)

    def __call__(self, s) -> None:
        self._live.update(progress_text(s))


def progress_text(s) -> str:
    """One progress line (a bench.run.phases.Progress): phase, elapsed, asked / sent / scored
    per second, p99 of the last 5 s, and lag (records sent but not yet visible in the output)."""
    return (f"{s.phase:>8} {s.elapsed_s:6.1f}s  asked {_tps(s.asked_tps)}/s  "
            f"sent {_tps(s.sent_tps)}/s  scored {_tps(s.achieved_tps)}/s  "
            f"p99(5s) {_ms(s.p99_ms)} ms  lag {s.lag:,}")


def exit_code(result: RunResult) -> int:
    if not result.exactly_once:
        return EXIT_EOS
    return EXIT_OK if result.passed else EXIT_SLO


# The two parts of end to end, split at the output's timestamp (see bench.measure.sink).
_STAGE_LABELS = (("  until scored", lambda s: s.until_scored),
                 ("  scored → visible", lambda s: s.scored_to_visible))


def _gc_cell(gc) -> str:
    """How long the broker stood still for GC during a step ("-": no pause)."""
    if not gc:
        return ""
    return _ms(gc.total_ms) if gc.count else "-"


def _latency_rows(table: Table, label: str, e2e: Latency | None) -> None:
    cells = (None,) * 5 if e2e is None else (e2e.p50_ms, e2e.p90_ms, e2e.p99_ms, e2e.p999_ms, e2e.max_ms)
    table.add_row(label, *map(_ms, cells))


def snapshot_words(interval_s: float | None) -> str:
    """A non-default card-state snapshot interval in words ("" for the service's default);
    bench run's header and bench drain's summary."""
    if interval_s is None:
        return ""
    if interval_s == 0:
        return "a card-state snapshot in every transaction"
    return f"a card-state snapshot every {interval_s:g} s"


def _state_words(scenario) -> str:
    """How the header names fraudstream's card state when it is not the default."""
    if not scenario.state:
        return ", fraudstream without per-card state"
    words = snapshot_words(scenario.snapshot_interval_s)
    return f", {words}" if words else ""


def print_result(result: RunResult, console: Console | None = None) -> None:
    """The final table(s) of a run."""
    console = console or report_console()
    m = result.machine
    in_memory = result.broker_data is not None and result.broker_data.in_memory
    console.print(f"[bold]{result.scenario.name}[/] on {m.cores} cores ({m.cpu_model}), "
                  f"librdkafka {m.librdkafka}, broker {result.bootstrap}"
                  + (", broker data in memory" if in_memory else "")
                  + _state_words(result.scenario)
                  + (f", load average {m.loadavg_1m_at_end:g}" if m.loadavg_1m_at_end is not None else ""))
    on_disk = result.embedded_broker and not in_memory
    hint = writeback_hint(m.vm_writeback) if on_disk else None
    if hint:
        console.print(f"[yellow]note: {hint}[/]")
    for run in result.runs:
        h = run.headline
        console.rule(f"{run.pipeline}  ({run.run_id})")
        warm = run.broker_warmup
        if warm and warm.compiler_cpu_s > 0:
            console.print(f"broker JIT warm-up before measuring: {warm.seconds:g} s, compiler "
                          f"{warm.compiler_cpu_s:g} s CPU" + ("" if warm.settled else
                                                              " [yellow](not settled)[/]"))
        if run.steps:
            holds = ([run.confirmation] if run.confirmation else []) + run.step_downs
            _print_steps(console, run.steps + holds)
        if run.window is not None and run.window.drained is False:
            console.print(f"[yellow]note: the warm-up's records were not all visible after "
                          f"drain_s ({result.scenario.drain_s:g} s): the measurement started on a backlog[/]")
        if run.kind == "max" and h.e2e is None:
            low = min(run.steps, key=lambda x: x.asked_tps) if run.steps else None
            console.print("[red]no rate tried held the SLO[/]" + (
                f": the lowest, {_tps(low.asked_tps)}/s, had p99 {_ms(low.judged_e2e.p99_ms)} ms"
                if low else ""))
        else:
            title = ("measurement window" if run.kind == "fixed" else _hold_title(run)
                     if run.confirmation else "at the peak rate")
            t = Table("latency (ms)", "p50", "p90", "p99", "p99.9", "max", title_justify="left",
                      title=title)
            # the verdict's own figures: unseen records counted at their age
            judged = h.judged_e2e or h.e2e
            unseen = f", {h.unseen:,} unseen at their age" if h.unseen else ""
            _latency_rows(t, f"end-to-end{unseen}", judged)
            for label, stage in _stages(h.e2e_stages):
                if stage is not None and stage.count:
                    _latency_rows(t, label, stage)
            _latency_rows(t, "publish delay", h.publish_delay)
            console.print(t)
            console.print(f"throughput: asked {_tps(h.asked_tps)}/s, achieved {_tps(h.achieved_tps)}/s, "
                          f"sustained within the SLO [bold]{_tps(h.sustained_tps)}[/]/s")
        if h.peaks_tps:
            console.print(_peaks_text(h, run.step_downs))
        if h.cpu_cores:
            console.print("CPU (cores): " + ", ".join(f"{k} {v:.2f}" for k, v in h.cpu_cores.items()))
        gc = h.broker_gc   # only for a local broker, and absent in older results
        if gc and gc.count:
            console.print(f"broker GC: {gc.count} pauses, p50 {_ms(gc.p50_ms)} ms, max "
                          f"{_ms(gc.max_ms)} ms, paused {gc.share:.1%} of the time")
        if run.scorer_memory is not None:
            console.print(memory_text(run.scorer_memory, run.workers_restarted))
        v = run.verdict
        eos = "[green]EXACTLY-ONCE[/]" if v.exactly_once else "[red]VIOLATED[/]"
        console.print(f"exactly-once: {eos}  sent {v.sent:,}  scored {v.scored_unique:,}  "
                      f"missing {v.missing:,}  duplicated {v.duplicated:,}  "
                      f"unexpected {v.unexpected:,}  alerts {v.alerts:,} "
                      f"(dup {v.alert_duplicates}, unflagged {v.alerts_not_flagged}, "
                      f"flagged without alert {v.flagged_without_alert})")
        d = v.detection
        if d.precision is not None or d.recall is not None:
            console.print(f"detection vs _synthetic_label: precision {_ms(_pct(d.precision))}%  "
                          f"recall {_ms(_pct(d.recall))}%  ({d.true_positives}/{d.positives_sent})")
        for name, p in (d.by_pattern or {}).items():
            console.print(f"  {name:20s} recall {_ms(_pct(p.recall))}% ({p.true_positives}/"
                          f"{p.positives_sent})  precision vs legit {_ms(_pct(p.precision))}%")
        _print_faults(console, run.faults)
        slo = run.slo
        console.print(f"SLO p99 <= {slo.p99_ms:g} ms, p99.9 <= {slo.p999_ms:g} ms, rate >= "
                      f"{slo.min_rate_ratio:.0%} of asked: "
                      + ("[green]PASS[/]" if run.slo_passed else "[red]FAIL[/]"))
    if result.comparison is not None:
        c = result.comparison
        console.rule("comparison")
        brackets = [r.headline.bracket_tps for r in result.runs]
        console.print(f"{c.pipelines[1]} / {c.pipelines[0]} sustained rate: "
                      f"{_bracket_text(brackets[1])} / {_bracket_text(brackets[0])} = "
                      f"[bold]{ratio_text(c.ratio_range)}[/]")
    console.print(f"exit code {exit_code(result)}")


def _s(x) -> str:
    return "-" if x is None else f"{x:,.2f}"


def _count(x) -> str:
    return "-" if x is None else f"{x:,}"


def _print_faults(console: Console, faults) -> None:
    """One line per kill, then how the partitions of the killed scoring processes came back:
    who took each over, its restore, and the seconds from the kill to the restore's end and to
    the partition's first committed batch (bench.measure.restores)."""
    for f in faults:
        console.print(f"fault: {msgspec.to_builtins(msgspec.structs.replace(f, restores=None))}")
    rows = [(f, r) for f in faults for r in f.restores or ()]
    empty = [f for f in faults if f.restores == []]
    if empty:
        console.print(f"{len(empty)} killed scoring process(es) held no partition by the service's log")
    if not rows:
        return
    replay = any(r.replayed is not None for _, r in rows)
    t = Table("kill at s", "pid", "partition", "by pid", "records", *(["replayed"] if replay else []),
              "cards", "restore s", "assigned +s", "restored +s", "committed +s",
              title="partitions of killed scorers back in service (the service's log; +s: seconds "
                    "after the kill)", title_justify="left")
    for f, r in rows:
        t.add_row("-" if f.at_s is None else f"{f.at_s:g}", str(f.pid), str(r.partition),
                  "-" if r.pid is None else str(r.pid), _count(r.records),
                  *([_count(r.replayed)] if replay else []), _count(r.cards), _s(r.restore_s),
                  _s(r.assigned_after_s), _s(r.restored_after_s), _s(r.first_commit_after_s))
    console.print(t)
    back = sorted(r.first_commit_after_s for _, r in rows if r.first_commit_after_s is not None)
    if back:
        console.print(f"kill -9 → first committed batch: median {_s(statistics.median(back))} s, "
                      f"max {_s(back[-1])} s over {len(back)} partition(s)"
                      + (f"; {len(rows) - len(back)} with no commit logged before the run ended"
                         if len(back) < len(rows) else ""))


def _hold_title(run) -> str:
    """The headline table's title for a search with confirmation: the hold it shows."""
    h, median = run.headline, run.confirmation
    if median.passed or h.sustained_tps is None:
        return "confirmation at the median peak"
    return f"{median.seconds} s hold at {_tps(h.asked_tps)}/s, a step down"


def memory_text(m, replaced: int = 0) -> str:
    """The scoring service's RSS over the run, and its growth per million records scored
    (only past a million: over fewer, start-up's own growth would be extrapolated). replaced:
    scoring processes killed and restarted while measuring; a replacement's start-up (its
    model, compiled kernels, a restore) is in the growth then, so no rate is given."""
    grew = m.end_mb - m.start_mb
    per = f" ({grew / m.scored * 1e6:+,.1f} MB per million)" if m.scored >= 1_000_000 and not replaced else ""
    restarts = (f"; {replaced} scoring process{'es' if replaced > 1 else ''} killed and restarted meanwhile, "
                "each restart's start-up counted in it") if replaced else ""
    return (f"scorer memory (RSS): {m.start_mb:,.0f} MB when measuring began, peak {m.peak_mb:,.0f}, "
            f"{m.end_mb:,.0f} after the drain: {grew:+,.0f} MB over {m.scored:,} records scored{per}{restarts}")


def _print_steps(console: Console, steps) -> None:
    """The search's steps (every trial, then the confirmation and its step downs): asked,
    sent by the clock, the window's own records scored, publish delay, the judged latency,
    and lag growth."""
    gc = any(s.broker_gc for s in steps)
    trials = len({s.trial for s in steps if s.trial is not None}) > 1
    st = Table(*(["trial"] if trials else []), "stage", "asked/s", "sent/s", "scored/s", "pub p99",
               "p50", "p99", "p99.9", "unseen", "lag +", *(["GC ms"] if gc else []), "SLO",
               title="rate search (ms)", title_justify="left")
    for s in steps:
        e = s.judged_e2e
        grew = "-" if s.lag_start is None or s.lag_end is None else f"{s.lag_end - s.lag_start:,}"
        stage = s.stage + (" [yellow](not drained)[/]" if s.drained is False else "")
        st.add_row(*([("" if s.trial is None else str(s.trial + 1))] if trials else []),
                   stage, _tps(s.asked_tps), _tps(s.sent_tps), _tps(s.achieved_tps),
                   _ms(s.publish_delay.p99_ms), _ms(e.p50_ms), _ms(e.p99_ms), _ms(e.p999_ms),
                   f"{s.unseen:,}", grew, *([_gc_cell(s.broker_gc)] if gc else []),
                   "[green]pass[/]" if s.passed else "[red]miss[/]")
    console.print(st)


def _peaks_text(h, step_downs=()) -> str:
    """The trials' peaks: median, min, max and spread, and the outcome of the confirmation
    and of each hold at a lower rate after it."""
    held = [p for p in h.peaks_tps if p is not None]
    spread = (f", spread {(max(held) - min(held)) / h.peak_median_tps:.0%} of the median"
              if h.peak_median_tps and len(held) > 1 else "")
    text = (f"peaks of {len(h.peaks_tps)} searches: median {_tps(h.peak_median_tps)}/s, "
            f"min {_tps(h.peak_min_tps)}/s, max {_tps(h.peak_max_tps)}/s{spread}; ")
    within = f"rate within {_bracket_text(h.bracket_tps)}"
    if h.confirmed is None:
        return text + within
    outcome = "confirmation " + ("[green]held[/]" if h.confirmed else "[red]missed[/]")
    if not step_downs:
        return text + f"{within}; {outcome}"
    downs = "step downs ({} s each): {}".format(step_downs[0].seconds, ", ".join(
        f"{_tps(w.asked_tps)}/s " + ("[green]held[/]" if w.passed else "[red]missed[/]") for w in step_downs))
    if h.sustained_tps is None:      # none held: the bracket is still the searches'
        return text + f"{within}; {outcome}\n{downs}"
    return text + f"{outcome}\n{downs}; {within}"   # the holds' bracket (Headline.bracket_tps)


def _bracket_text(bracket) -> str:
    if bracket is None:
        return "-"
    lo, hi = bracket
    if hi is None:
        return f"[{_tps(lo)}, -)"
    return _tps(lo) if lo == hi else f"[{_tps(lo)}, {_tps(hi)})"


def _stages(stages: Stages | None) -> list[tuple[str, Latency | None]]:
    """(label, summary) of end to end's two parts; None for both in results written before them."""
    return [(label, None if stages is None else part(stages)) for label, part in _STAGE_LABELS]


def _pct(x):
    return None if x is None else 100 * x


def print_comparison(a: RunResult, b: RunResult, console: Console | None = None) -> None:
    """Two results side by side, run by run, with B/A ratios."""
    console = console or report_console()
    t = Table("", "A", "B", "B/A", title=f"A = {a.scenario.name} ({a.started_at})  "
              f"B = {b.scenario.name} ({b.started_at})", title_justify="left")

    def row(label, x, y, fmt, ratio=None):
        ratio = ratio or (f"{y / x:,.2f}" if x and y else "-")
        t.add_row(label, fmt(x), fmt(y), ratio)

    def pct(e2e: Latency | None, name: str):
        return None if e2e is None else getattr(e2e, name)

    wa, wb = (r.scenario.topology.scoring_processes for r in (a, b))
    t.add_row("scoring processes", str(wa), str(wb), f"{wb / wa:,.2f}")
    for ra, rb in zip(a.runs, b.runs):
        ha, hb = ra.headline, rb.headline
        t.add_row(f"[bold]{ra.pipeline} vs {rb.pipeline}[/]", "", "", "")
        # rates from searches: the ratio of their brackets, a range
        row("sustained tx/s", ha.sustained_tps, hb.sustained_tps, _tps,
            ratio_text(ratio_range(ha.bracket_tps, hb.bracket_tps)) if ha.bracket_tps and hb.bracket_tps else None)
        for label, name in (("p50", "p50_ms"), ("p99", "p99_ms"), ("p99.9", "p999_ms"), ("max", "max_ms")):
            row(f"e2e {label} ms", pct(ha.e2e, name), pct(hb.e2e, name), _ms)
        if ha.e2e_stages is not None or hb.e2e_stages is not None:   # absent before stages
            for (label, sa), (_, sb) in zip(_stages(ha.e2e_stages), _stages(hb.e2e_stages)):
                for k, name in (("p50", "p50_ms"), ("p99", "p99_ms")):
                    row(f"{label.strip()} {k} ms", pct(sa, name), pct(sb, name), _ms)
        t.add_row("exactly-once", str(ra.verdict.exactly_once), str(rb.verdict.exactly_once), "")
    console.print(t)
