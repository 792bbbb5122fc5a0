"""The broker warm-up: when it counts the JIT as settled, and that it stops at once when the
broker's JVM goes away (otherwise it drains)."""

from types import SimpleNamespace

from bench import jitwarm


def _ctx():
    plans = []
    harness = SimpleNamespace(plan=lambda segs, replace: plans.append(segs))
    return SimpleNamespace(harness=harness, scenario=SimpleNamespace(drain_s=60.0)), plans


def _warm(monkeypatch, readings, pids=(1,)):
    readings = iter(readings)
    drained, windows = [], []
    monkeypatch.setattr(jitwarm, "compiler_cpu_seconds", lambda pids: next(readings))
    monkeypatch.setattr(jitwarm, "sleep_until", lambda *a: windows.append(a))
    monkeypatch.setattr(jitwarm, "wait_drained", lambda ctx, timeout: drained.append(timeout))
    ctx, plans = _ctx()
    out = jitwarm.warm_broker(ctx, list(pids), 3_000.0, echo=lambda line: None)
    out["windows"] = len(windows)
    return out, drained, plans


def test_a_broker_that_stops_mid_warmup_ends_it_without_a_drain(monkeypatch):
    out, drained, plans = _warm(monkeypatch, [10.0, 12.0, None])
    assert out["settled"] is False and drained == []
    assert plans[-1] == []                     # the load is stopped either way


def test_a_settled_compiler_ends_the_warmup_with_a_drain(monkeypatch):
    out, drained, plans = _warm(monkeypatch, [10.0, 12.0, 12.1])
    assert out["settled"] is True and out["compiler_cpu_s"] == 2.1
    assert drained == [60.0] and plans[-1] == []



def test_the_settled_threshold_is_per_broker(monkeypatch):
    # 0.12 core of compiling in the first window: settled for three brokers (0.04 each),
    # not for one, which needs a second, quiet window.
    readings = [10.0, 10.0 + 0.12 * jitwarm.WINDOW_S, 10.37]
    three, _, _ = _warm(monkeypatch, readings, pids=(1, 2, 3))
    one, _, _ = _warm(monkeypatch, readings, pids=(1,))
    assert (three["settled"], three["windows"]) == (True, 1)
    assert (one["settled"], one["windows"]) == (True, 2)
