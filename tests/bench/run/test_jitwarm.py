"""The broker warm-up: when it counts the JIT as settled, and that it stops at once when the
broker's JVM goes away (otherwise it drains)."""

from types import SimpleNamespace

from bench.run import jitwarm


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
    return out, drained, plans, len(windows)


def test_a_broker_that_stops_mid_warmup_ends_it_without_a_drain(monkeypatch):
    out, drained, plans, _ = _warm(monkeypatch, [{1: 10.0}, {1: 12.0}, None])
    assert out.settled is False and drained == []
    assert plans[-1] == []                     # the load is stopped either way


def test_a_settled_compiler_ends_the_warmup_with_a_drain(monkeypatch):
    out, drained, plans, _ = _warm(monkeypatch, [{1: 10.0}, {1: 12.0}, {1: 12.1}])
    assert out.settled is True and out.compiler_cpu_s == 2.1
    assert drained == [60.0] and plans[-1] == []



def test_the_settled_threshold_is_per_broker(monkeypatch):
    # 0.12 core of compiling in a window: settled when three brokers share it (0.04 each),
    # not when one broker does it alone, even with two idle ones beside it.
    w = jitwarm.WINDOW_S
    shared = [{1: 10.0, 2: 10.0, 3: 10.0}, {1: 10.0 + 0.04 * w, 2: 10.0 + 0.04 * w, 3: 10.0 + 0.04 * w}]
    three, _, _, three_windows = _warm(monkeypatch, shared, pids=(1, 2, 3))
    alone = [{1: 10.0, 2: 10.0, 3: 10.0}, {1: 10.0 + 0.12 * w, 2: 10.0, 3: 10.0},
             {1: 10.0 + 0.12 * w, 2: 10.0, 3: 10.0}]
    one, _, _, one_windows = _warm(monkeypatch, alone, pids=(1, 2, 3))
    assert (three.settled, three_windows) == (True, 1)
    assert (one.settled, one_windows) == (True, 2)
    assert one.compiler_cpu_s == round(0.12 * w, 1)
