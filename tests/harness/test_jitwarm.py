"""The broker warm-up stops at once when the broker's JVM goes away, and otherwise drains."""

from types import SimpleNamespace

from bench import jitwarm


def _ctx():
    plans = []
    harness = SimpleNamespace(plan=lambda segs, replace: plans.append(segs))
    return SimpleNamespace(harness=harness, scenario=SimpleNamespace(drain_s=60.0)), plans


def _warm(monkeypatch, readings):
    readings = iter(readings)
    drained = []
    monkeypatch.setattr(jitwarm, "compiler_cpu_seconds", lambda pids: next(readings))
    monkeypatch.setattr(jitwarm, "sleep_until", lambda *a: None)
    monkeypatch.setattr(jitwarm, "wait_drained", lambda ctx, timeout: drained.append(timeout))
    ctx, plans = _ctx()
    out = jitwarm.warm_broker(ctx, [1], 3_000.0, echo=lambda line: None)
    return out, drained, plans


def test_a_broker_that_stops_mid_warmup_ends_it_without_a_drain(monkeypatch):
    out, drained, plans = _warm(monkeypatch, [10.0, 12.0, None])
    assert out["settled"] is False and drained == []
    assert plans[-1] == []                     # the load is stopped either way


def test_a_settled_compiler_ends_the_warmup_with_a_drain(monkeypatch):
    out, drained, plans = _warm(monkeypatch, [10.0, 12.0, 12.1])
    assert out["settled"] is True and out["compiler_cpu_s"] == 2.1
    assert drained == [60.0] and plans[-1] == []
