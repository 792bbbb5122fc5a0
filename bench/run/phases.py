"""The measured part of a run: a fixed rate plan, or the `max` search for the highest rate
that holds the SLO. Both drive a Harness and judge windows of its Timeline.

Seconds here are whole epoch seconds, so windows line up with the per-second histograms.
"""

import math
import time
from typing import Literal

import msgspec

from bench.measure.procs import CpuMeter
from bench.load.schedule import NS, profile_segments
from bench.report.result import Window
from bench.spec.scenario import Bursts, Max

__all__ = ["run_fixed", "run_max", "judge_fixed", "wait_drained", "sleep_until", "warmup_tps",
           "median_peak", "next_hold", "Context", "Progress", "Measured"]

_DESCENT_STEPS = 4   # a missed first step: try start_tps / factor**k for k = 1..4


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """One update of the live progress line (bench.report.text.progress_text)."""
    phase: str
    elapsed_s: float
    asked_tps: float
    sent_tps: int           # in the last second every child has reported whole
    achieved_tps: int       # scored and visible in that second
    p99_ms: float | None    # end to end over the last 5 such seconds
    lag: int                # records sent by then and not visible yet
    sent: int
    scored: int


class Measured(msgspec.Struct, frozen=True, kw_only=True):
    """What run_fixed / run_max hand back: the measured span and, for a search, its steps."""
    kind: Literal["fixed", "max"]
    t_measure: int          # epoch second the measurement began
    t_end: int
    asked_tps: float | None = None          # fixed: the plan's mean rate
    cpu: dict[str, float] | None = None     # fixed: cores per group over the window
    steps: list[Window] = []                # max: every step judged, in order, all trials
    peak: Window | None = None              # max: the trial's peak nearest the median peak
    peaks: list[float | None] = []          # max: each trial's peak rate (None: none held)
    brackets: list[tuple[float, float | None]] = []   # max: (peak, lowest miss above) per trial
    confirmation: Window | None = None      # max: the median peak held for confirm_s
    step_downs: list[Window] = []           # max: holds at lower rates after it missed
    drained: bool | None = None             # fixed: the measurement started drained


class Context:
    """What the phases need: the harness, the scenario, CPU groups, a progress callback,
    a fault hook called with seconds since the measurement began, and (for a local broker)
    broker_gc(start_s, end_s) -> its GC pauses in a window (bench.broker.gclog)."""

    def __init__(self, harness, scenario, cpu_groups, progress=None, fault_hook=None, alive=None,
                 broker_gc=None):
        self.harness = harness
        self.scenario = scenario
        self.cpu_groups = cpu_groups      # callable -> {group: [pids]}
        self.progress = progress
        self._shown = 0.0
        self.fault_hook = fault_hook or (lambda t: None)
        self.alive = alive or (lambda: None)   # raises when the pipeline died for good
        self.broker_gc = broker_gc or (lambda start_s, end_s: None)

    def tick(self, phase: str, t_start: int, asked_tps: float, seconds: float = 0.25) -> None:
        self.harness.pump(seconds)
        self.harness.check_alive()
        self.alive()
        if self.progress is None:
            return
        now = time.time()
        if now - self._shown < 1.0:   # merging histograms is not free: once a second
            return
        self._shown = now
        tl = self.harness.timeline
        last = tl.settled_second(now)
        recent, _ = tl.window(last - 4, last + 1)
        self.progress(Progress(phase=phase, elapsed_s=now - t_start, asked_tps=asked_tps,
                               sent_tps=(tl.sent_at or tl.sent).get(last, 0),
                               achieved_tps=tl.visible.get(last, 0),
                               p99_ms=recent.e2e.p99_ms, lag=tl.backlog(last),
                               sent=tl.total_sent, scored=tl.total_scores))


def sleep_until(ctx: Context, t_sec: float, phase: str, t_start: int, tps: float) -> None:
    """Keep the harness ticking (results in, progress out) until wall time `t_sec`."""
    while time.time() < t_sec:
        ctx.tick(phase, t_start, tps, min(0.25, max(t_sec - time.time(), 0.001)))


def wait_drained(ctx: Context, timeout: float) -> bool:
    """Pump until every record sent so far is visible in fraud-scores, or timeout."""
    deadline = time.monotonic() + timeout
    tl = ctx.harness.timeline
    while time.monotonic() < deadline:
        ctx.tick("drain", int(time.time()), 0.0)
        if tl.total_scores >= tl.total_sent:
            return True
    return False


def warmup_tps(rate, segs) -> float:
    """The rate a fixed plan warms up at: its base rate. A burst profile starts with a burst
    (segs[0] is burst_tps): warming up at it ran straight into the first burst, several
    seconds of overload that then set the window's tail."""
    return rate.base_tps if isinstance(rate, Bursts) else segs[0].tps


def run_fixed(ctx: Context, t0: int) -> Measured:
    """Warm-up at the base rate, a drain, then the scenario's rate plan; judges the whole
    measurement window. The measurement starts on a drained pipeline (waited for up to
    drain_s; `drained` says whether it was)."""
    s = ctx.scenario
    segs = profile_segments(s.rate, s.duration_s)
    warm = math.ceil(s.warmup_s)
    base = warmup_tps(s.rate, segs)
    drained = None
    if warm:
        ctx.harness.plan([(t0 * NS, warm * NS, base)], replace=True)
        sleep_until(ctx, t0 + warm, "warm-up", t0, base)
        drained = wait_drained(ctx, s.drain_s)
    t_meas = max(int(time.time()) + 1, t0 + warm)
    plan = [(int((t_meas + g.offset_s) * NS), int(g.duration_s * NS), g.tps) for g in segs]
    ctx.harness.plan(plan, replace=True)
    t_end = t_meas + math.ceil(s.duration_s)
    asked = sum(g.tps * g.duration_s for g in segs) / s.duration_s
    sleep_until(ctx, t_meas, "warm-up", t0, base)
    meter = CpuMeter()
    meter.start(ctx.cpu_groups(), time.time())
    faults = sorted(s.faults, key=lambda f: f.at_s)
    while time.time() < t_end:
        now = time.time()
        while faults and now - t_meas >= faults[0].at_s:
            ctx.fault_hook(faults.pop(0))
        rate = next((g.tps for g in reversed(segs) if now - t_meas >= g.offset_s), segs[0].tps)
        ctx.tick("measure", t_meas, rate)
    cpu = meter.stop(ctx.cpu_groups(), time.time())
    return Measured(kind="fixed", t_measure=t_meas, t_end=t_end, asked_tps=asked, cpu=cpu,
                    drained=drained)


def judge_fixed(ctx: Context, info: Measured) -> Window:
    """Judge a fixed run's window (after the drain, so late records are counted)."""
    w = ctx.harness.timeline.judge(info.t_measure, info.t_end, info.asked_tps, ctx.scenario.slo,
                                   time.time_ns())
    return msgspec.structs.replace(w, cpu_cores=info.cpu, drained=info.drained,
                                   broker_gc=ctx.broker_gc(info.t_measure, info.t_end))


class _Search:
    """One `max` search: ascending steps back to back, then steps on a drained pipeline."""

    def __init__(self, ctx: Context, t0: int, trial: int):
        s = ctx.scenario
        self.ctx, self.t0, self.trial, self.r = ctx, t0, trial, s.rate
        self.step, self.settle = math.ceil(self.r.step_s), math.ceil(self.r.settle_s)
        # judge a step once its records had time to show up (well past the p99.9 limit)
        self.grace = min(max(1, math.ceil(3 * s.slo.p999_ms / 1000)), self.step - 1)
        self.steps: list[Window] = []

    def ascend(self, start: int, warm: int) -> tuple[Window | None, Window | None]:
        """Steps from start_tps up by `factor` until a miss: (highest pass, the miss)."""
        ctx, r, h, step, settle = self.ctx, self.r, self.ctx.harness, self.step, self.settle
        h.plan(([((start - warm) * NS, warm * NS, r.start_tps)] if warm else [])
               + [(start * NS, step * NS, r.start_tps)], replace=True)
        queued = [(start, r.start_tps)]

        def queue_next():
            b, tps = queued[-1]
            nxt = tps * r.factor
            if nxt <= r.max_tps:
                queued.append((b + step, nxt))
                h.plan([((b + step) * NS, step * NS, nxt)])

        queue_next()
        sleep_until(ctx, start, "warm-up", self.t0, r.start_tps)
        k = 0
        best = None
        while k < len(queued):
            b, tps = queued[k]
            meter = CpuMeter()
            sleep_until(ctx, b + settle, "search", self.t0, tps)
            meter.start(ctx.cpu_groups(), time.time())
            sleep_until(ctx, b + step, "search", self.t0, tps)
            cpu = meter.stop(ctx.cpu_groups(), time.time())
            sleep_until(ctx, b + step + self.grace, "search", self.t0,
                        queued[k + 1][1] if k + 1 < len(queued) else tps)
            res = self.judged(b + settle, b + step, tps, cpu, "ascend")
            if not res.passed:
                h.plan([], replace=True)
                return best, res
            best = res
            queue_next()
            k += 1
        return best, None

    def isolated(self, tps: float, stage: str, seconds: int | None = None) -> Window:
        """One step on a drained pipeline: settle, measure (step_s, or `seconds`), judge."""
        ctx, h, settle = self.ctx, self.ctx.harness, self.settle
        step = seconds or self.step
        drained = wait_drained(ctx, ctx.scenario.drain_s)
        b = int(time.time()) + 1
        h.plan([(b * NS, (settle + step) * NS, tps)], replace=True)
        meter = CpuMeter()
        sleep_until(ctx, b + settle, stage, self.t0, tps)
        meter.start(ctx.cpu_groups(), time.time())
        sleep_until(ctx, b + settle + step, stage, self.t0, tps)
        cpu = meter.stop(ctx.cpu_groups(), time.time())
        sleep_until(ctx, b + settle + step + self.grace, stage, self.t0, tps)
        return self.judged(b + settle, b + settle + step, tps, cpu, stage, drained)

    def judged(self, a, b, tps, cpu, stage, drained=None) -> Window:
        ctx = self.ctx
        w = ctx.harness.timeline.judge(a, b, tps, ctx.scenario.slo, time.time_ns())
        w = msgspec.structs.replace(w, cpu_cores=cpu, broker_gc=ctx.broker_gc(a, b), stage=stage,
                                    trial=self.trial, drained=drained)
        self.steps.append(w)
        return w

    def run(self, start: int, warm: int) -> tuple[Window | None, float | None]:
        """The whole search: (the highest step that held, the lowest rate above it that
        missed; None when max_tps held)."""
        r = self.r
        best, first_fail = self.ascend(start, warm)
        # Missed at the very first rate: come down by `factor` until a rate holds (a few tries).
        tps = r.start_tps
        for _ in range(_DESCENT_STEPS if best is None else 0):
            tps /= r.factor
            res = self.isolated(tps, "descend")
            if res.passed:
                best = res
                break
            first_fail = res
        if best is None or first_fail is None:
            return best, None
        lo, hi = best.asked_tps, first_fail.asked_tps
        for _ in range(r.refine):
            mid = math.sqrt(lo * hi)
            res = self.isolated(mid, "refine")
            if res.passed:
                lo, best = mid, res
            else:
                hi = mid
        return best, hi


def run_max(ctx: Context, t0: int, repeat: int | None = None) -> Measured:
    """The `max` search, `repeat` times (default: the scenario's), each after a drain; then
    the median peak held for confirm_s seconds on a drained pipeline and, if it missed, up
    to confirm_steps holds at lower rates (next_hold), each on a drained pipeline."""
    s = ctx.scenario
    r: Max = s.rate
    repeat = r.repeat if repeat is None else repeat
    warm = math.ceil(s.warmup_s)
    steps: list[Window] = []
    peaks: list[Window | None] = []
    brackets: list[tuple[float, float | None]] = []
    search = None
    for trial in range(repeat):
        search = _Search(ctx, t0, trial)
        if trial == 0:
            start, w = t0 + warm, warm
        else:   # the pipeline is warm: start the next search on it drained
            wait_drained(ctx, s.drain_s)
            start, w = int(time.time()) + 1, 0
        best, miss_above = search.run(start, w)
        steps += search.steps
        peaks.append(best)
        if best is not None:
            brackets.append((best.asked_tps, miss_above))
    median = median_peak([p.asked_tps if p is not None else None for p in peaks])
    confirmation, holds = None, []
    if median is not None and r.confirm_s > 0:
        search.steps = []
        search.trial = None
        while len(holds) <= r.confirm_steps:
            tps = median if not holds else next_hold([(h.asked_tps, h.passed) for h in holds], r.factor)
            if tps is None:
                break
            holds.append(search.isolated(tps, "step down" if holds else "confirm", math.ceil(r.confirm_s)))
        confirmation = holds[0]
    held = [p for p in peaks if p is not None]
    best = min(held, key=lambda p: abs(p.asked_tps - median)) if held else None
    return Measured(kind="max", steps=steps, peak=best, t_measure=t0 + warm, t_end=int(time.time()),
                    peaks=[None if p is None else p.asked_tps for p in peaks], brackets=brackets,
                    confirmation=confirmation, step_downs=holds[1:])


def median_peak(peaks: list[float | None]) -> float | None:
    """The median of the trials' peaks, a trial that held no rate counting as the lowest;
    None when that median trial held none. An even count takes the lower middle one (a
    rate a trial did hold, never a mean of two)."""
    if not peaks:
        return None
    ranked = sorted(peaks, key=lambda p: -1.0 if p is None else p)
    return ranked[(len(ranked) - 1) // 2]


def next_hold(holds: list[tuple[float, bool]], factor: float) -> float | None:
    """The rate of the next confirmation hold after `holds` ((rate, held) in the order run,
    the first at the median peak), or None when the median peak held (nothing to step down
    from; above it is the search's to find).

    While no hold has held: factor**0.5 below the lowest miss, so two holds reach one whole
    search step (factor) below the median peak. The backlog a GC pause leaves drains at the
    spare capacity (capacity - rate), which a modest cut in rate multiplies near saturation,
    so reach matters more than a fine first step; and the rates stay on the grid the search
    runs on (factor**0.25 apart with refine 2), comparable from run to run.

    Once one held: halfway (geometric) between the highest that held and the lowest miss
    above it, as the search refines, so a miss, a pass and one more hold narrow the figure
    to factor**0.25, the search's own resolution. Every rate returned is below every miss
    and above every pass."""
    if not holds or holds[0][1]:
        return None
    lowest_miss = min(tps for tps, held in holds if not held)
    passed = [tps for tps, held in holds if held]
    if not passed:
        return lowest_miss / math.sqrt(factor)
    return math.sqrt(max(passed) * lowest_miss)
