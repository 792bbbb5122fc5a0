"""PNG plots of a run: latency percentiles over time, asked vs achieved rate, and the latency
distribution (percentile spectrum) of the headline window, one figure per pipeline."""

from pathlib import Path

from bench.report.result import PipelineRun, RunResult

__all__ = ["plot_result", "plot_compare"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_result(result: RunResult, out_dir: Path) -> list[Path]:
    """Write <pipeline>-timeline.png per run; returns the paths."""
    plt = _plt()
    paths = []
    for run in result.runs:
        rows = run.per_second
        if not rows:
            continue
        t = [r.t for r in rows]
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
        for label, key, style in (("p50", "p50_ms", "-"), ("p99", "p99_ms", "-"),
                                  ("p99.9", "p999_ms", "--"), ("max", "max_ms", ":")):
            ax1.plot(t, [getattr(r, key) for r in rows], style, label=label)
        ax1.axhline(run.slo.p99_ms, color="red", lw=0.8, ls="--", label="p99 SLO")
        ax1.set_yscale("log")
        ax1.set_ylabel("end-to-end latency (ms), by intended send second")
        ax1.legend(loc="upper left", fontsize=8)
        ax1.set_title(f"{result.scenario.name}: {run.pipeline} ({run.run_id})")
        ax2.plot(t, [r.sent for r in rows], label="sent (asked schedule)")
        ax2.plot(t, [r.visible for r in rows], label="scored & visible")
        for f in run.faults:
            ax1.axvline((f.at_s or 0) + result.scenario.warmup_s, color="k", lw=0.8)
        ax2.set_ylabel("records / s")
        ax2.set_xlabel("seconds since warm-up began")
        ax2.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{run.pipeline}-timeline.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
        if run.steps:
            paths.append(_plot_steps(plt, run, out_dir))
        if run.headline.e2e_spectrum:
            paths.append(_plot_spectrum(plt, [(run.pipeline, run)], out_dir / f"{run.pipeline}-latency.png"))
    return paths


def _plot_spectrum(plt, runs: list[tuple[str, PipelineRun]], path: Path) -> Path:
    """HdrHistogram-style percentile distribution: x = 1/(1-p) on a log axis."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, run in runs:
        pts = [(p, ms) for p, ms in run.headline.e2e_spectrum if p < 100.0]
        ax.plot([1 / (1 - p / 100) for p, _ in pts], [ms for _, ms in pts], marker="o", ms=3,
                label=f"{label} @ {run.headline.asked_tps or 0:,.0f}/s")
    ticks = [0, 50, 90, 99, 99.9, 99.99, 99.999]
    ax.set_xscale("log")
    ax.set_xticks([1 / (1 - p / 100) for p in ticks], [f"{p:g}%" for p in ticks])
    ax.set_xlabel("percentile")
    ax.set_ylabel("end-to-end latency (ms)")
    ax.set_title("latency distribution (headline window)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_steps(plt, run: PipelineRun, out_dir: Path) -> Path:
    steps = run.steps
    fig, ax = plt.subplots(figsize=(8, 5))
    x = [s.asked_tps for s in steps]
    for label, key in (("p50", "p50_ms"), ("p99", "p99_ms"), ("p99.9", "p999_ms")):
        ax.scatter(x, [getattr(s.judged_e2e, key) for s in steps], label=label)
    ax.axhline(run.slo.p99_ms, color="red", lw=0.8, ls="--", label="p99 SLO")
    ax.axhline(run.slo.p999_ms, color="purple", lw=0.8, ls=":", label="p99.9 SLO")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("asked rate (tx/s)")
    ax.set_ylabel("end-to-end latency (ms)")
    ax.set_title(f"{run.pipeline}: latency vs rate (rate search)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / f"{run.pipeline}-rate-search.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_compare(a: RunResult, b: RunResult, path: Path) -> Path:
    """Latency percentiles of the headline windows of two results, side by side."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    labels = ("p50", "p90", "p99", "p99.9", "max")
    width = 0.8 / max(len(a.runs) + len(b.runs), 1)
    i = 0
    for tag, res in (("A", a), ("B", b)):
        for run in res.runs:
            e2e = run.headline.e2e
            ms = [0] * 5 if e2e is None else [e2e.p50_ms, e2e.p90_ms, e2e.p99_ms, e2e.p999_ms, e2e.max_ms]
            ax.bar([k + i * width for k in range(len(labels))], [x or 0 for x in ms], width,
                   label=f"{tag}: {run.pipeline} @ {run.headline.sustained_tps or 0:,.0f}/s")
            i += 1
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yscale("log")
    ax.set_ylabel("end-to-end latency (ms)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
