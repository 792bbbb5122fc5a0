"""Warm a local broker until its JIT compiler has settled, before anything is measured.

A freshly started broker runs interpreted. Under load its C1/C2 compiler threads then take
0.4-0.6 of a core for ~80 s and ~0.1 until ~2 min (measured at 3,000 tx/s on 2 cores: 109 s
of compile CPU), which on a small machine is what a run would measure. A broker that is
already warm settles in the first window, so the check costs a few seconds.
"""

import time
from pathlib import Path

from bench.measure import procs
from bench.run.phases import sleep_until, wait_drained
from bench.load.schedule import NS
from bench.report.result import BrokerWarmup

__all__ = ["compiler_cpu_seconds", "warm_broker", "SETTLED_CORES", "MAX_WARM_S", "MAX_WARM_TPS"]

SETTLED_CORES = 0.05   # each JVM's compiler threads below this share of a core: warm
WINDOW_S = 3.0
MAX_WARM_S = 180.0
# enough requests to pass the JIT's compile thresholds quickly, and well below what the
# pipeline keeps up with here (~20,000 tx/s), so warming does not leave a backlog
MAX_WARM_TPS = 5_000.0


def compiler_cpu_seconds(pids) -> dict[int, float] | None:
    """CPU seconds the JIT compiler threads of each of these JVMs have used, by pid (None:
    none readable)."""
    used_by: dict[int, float] = {}
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                if not (task / "comm").read_text().startswith(("C1 Compiler", "C2 Compiler")):
                    continue
            except OSError:
                continue
            used = procs.cpu_seconds(pid, int(task.name))
            if used is not None:
                used_by[pid] = used_by.get(pid, 0.0) + used
    return used_by or None


def warm_broker(ctx, pids, tps: float, echo=print) -> BrokerWarmup | None:
    """Send at `tps` (at most MAX_WARM_TPS) until the brokers' compilers use less than
    SETTLED_CORES per broker over a window, then let the pipeline drain what it sent.

    Returns how long it took and the compiler's CPU (a BrokerWarmup), or None when the compiler threads
    cannot be seen (a remote broker, or no /proc). Threads that vanish mid-way mean the
    broker stopped: it returns at once, without waiting for a drain that cannot come."""
    first = compiler_cpu_seconds(pids)
    if first is None:
        return None
    tps = min(tps, MAX_WARM_TPS)
    t0 = time.time()
    ctx.harness.plan([(int(t0 * NS), int(MAX_WARM_S * NS), tps)], replace=True)
    last, settled, announced, stopped, compiled = first, False, False, False, 0.0
    while time.time() - t0 < MAX_WARM_S:
        sleep_until(ctx, time.time() + WINDOW_S, "broker warm-up", int(t0), tps)
        now = compiler_cpu_seconds(pids)
        if now is None:
            stopped = True
            break
        # Each broker on its own: three JVMs sharing two cores kept their summed compile CPU
        # above one broker's threshold for the whole 180 s cap.
        delta = {p: now[p] - last.get(p, now[p]) for p in now}
        busy = max(delta.values()) / WINDOW_S
        compiled += sum(max(d, 0.0) for d in delta.values())
        last = now
        if busy < SETTLED_CORES:
            settled = True
            break
        if not announced:
            echo(f"the broker's JIT compiler is busy ({busy:.2f} cores): warming it at "
                 f"{tps:,.0f} tx/s until it settles (at most {MAX_WARM_S:.0f} s)")
            announced = True
    ctx.harness.plan([], replace=True)
    seconds = time.time() - t0
    if not stopped:
        wait_drained(ctx, ctx.scenario.drain_s)
    return BrokerWarmup(seconds=round(seconds, 1), compiler_cpu_s=round(compiled, 1), settled=settled)
