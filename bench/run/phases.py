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
from bench.spec.scenario import Max

__all__ = ["run_fixed", "run_max", "wait_drained", "sleep_until", "Context", "Progress", "Measured"]

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
    steps: list[Window] = []                # max: every step judged, in order
    peak: Window | None = None              # max: the highest step that held the SLO


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
                               sent_tps=tl.sent.get(last, 0), achieved_tps=tl.visible.get(last, 0),
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


def run_fixed(ctx: Context, t0: int) -> Measured:
    """Warm-up then the scenario's rate plan; judges the whole measurement window."""
    s = ctx.scenario
    segs = profile_segments(s.rate, s.duration_s)
    warm = math.ceil(s.warmup_s)
    t_meas = t0 + warm
    plan = [(t0 * NS, warm * NS, segs[0].tps)] if warm else []
    plan += [(int((t_meas + g.offset_s) * NS), int(g.duration_s * NS), g.tps) for g in segs]
    ctx.harness.plan(plan, replace=True)
    t_end = t_meas + math.ceil(s.duration_s)
    asked = sum(g.tps * g.duration_s for g in segs) / s.duration_s
    sleep_until(ctx, t_meas, "warm-up", t0, segs[0].tps)
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
    return Measured(kind="fixed", t_measure=t_meas, t_end=t_end, asked_tps=asked, cpu=cpu)


def judge_fixed(ctx: Context, info: Measured) -> Window:
    """Judge a fixed run's window (after the drain, so late records are counted)."""
    w = ctx.harness.timeline.judge(info.t_measure, info.t_end, info.asked_tps, ctx.scenario.slo,
                                   time.time_ns())
    return msgspec.structs.replace(w, cpu_cores=info.cpu,
                                   broker_gc=ctx.broker_gc(info.t_measure, info.t_end))


def run_max(ctx: Context, t0: int) -> Measured:
    """Ascending fixed-rate steps back to back until one misses the SLO, then bisection."""
    s = ctx.scenario
    r: Max = s.rate
    step, settle = math.ceil(r.step_s), math.ceil(r.settle_s)
    # judge a step once its records had time to show up (well past the p99.9 limit)
    grace = min(max(1, math.ceil(3 * s.slo.p999_ms / 1000)), step - 1)
    warm = math.ceil(s.warmup_s)
    h = ctx.harness
    steps: list[Window] = []
    start = t0 + warm
    h.plan(([(t0 * NS, warm * NS, r.start_tps)] if warm else [])
           + [(start * NS, step * NS, r.start_tps)], replace=True)
    queued = [(start, r.start_tps)]

    def queue_next():
        b, tps = queued[-1]
        nxt = tps * r.factor
        if nxt <= r.max_tps:
            queued.append((b + step, nxt))
            h.plan([((b + step) * NS, step * NS, nxt)])

    queue_next()
    sleep_until(ctx, start, "warm-up", t0, r.start_tps)
    best = first_fail = None
    k = 0
    while k < len(queued):
        b, tps = queued[k]
        meter = CpuMeter()
        sleep_until(ctx, b + settle, "search", t0, tps)
        meter.start(ctx.cpu_groups(), time.time())
        sleep_until(ctx, b + step, "search", t0, tps)
        cpu = meter.stop(ctx.cpu_groups(), time.time())
        sleep_until(ctx, b + step + grace, "search", t0, queued[k + 1][1] if k + 1 < len(queued) else tps)
        res = _judged(ctx, b + settle, b + step, tps, cpu, "ascend")
        steps.append(res)
        if not res.passed:
            h.plan([], replace=True)
            first_fail = res
            break
        best = res
        queue_next()
        k += 1
    def isolated(tps, stage):
        """One step on a drained pipeline: settle, measure, judge."""
        wait_drained(ctx, s.drain_s)
        b = int(time.time()) + 1
        h.plan([(b * NS, (settle + step) * NS, tps)], replace=True)
        meter = CpuMeter()
        sleep_until(ctx, b + settle, stage, t0, tps)
        meter.start(ctx.cpu_groups(), time.time())
        sleep_until(ctx, b + settle + step, stage, t0, tps)
        cpu = meter.stop(ctx.cpu_groups(), time.time())
        sleep_until(ctx, b + settle + step + grace, stage, t0, tps)
        res = _judged(ctx, b + settle, b + settle + step, tps, cpu, stage)
        steps.append(res)
        return res

    # Missed at the very first rate: come down by `factor` until a rate holds (a few tries).
    tps = r.start_tps
    for _ in range(_DESCENT_STEPS if best is None else 0):
        tps /= r.factor
        res = isolated(tps, "descend")
        if res.passed:
            best = res
            break
        first_fail = res
    if best is not None and first_fail is not None:
        lo, hi = best.asked_tps, first_fail.asked_tps
        for _ in range(r.refine):
            mid = math.sqrt(lo * hi)
            res = isolated(mid, "refine")
            if res.passed:
                lo, best = mid, res
            else:
                hi = mid
    return Measured(kind="max", steps=steps, peak=best, t_measure=t0 + warm, t_end=int(time.time()))


def _judged(ctx, a, b, tps, cpu, stage) -> Window:
    w = ctx.harness.timeline.judge(a, b, tps, ctx.scenario.slo, time.time_ns())
    return msgspec.structs.replace(w, cpu_cores=cpu, broker_gc=ctx.broker_gc(a, b), stage=stage)
