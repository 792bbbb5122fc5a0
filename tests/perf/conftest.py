"""Fixtures for the hot-path micro-benchmarks, and a µs/event table at the end of the run.

Every benchmark times a round of many events; tests.perf.perevent.per_event turns its
statistics into µs per event (kept in extra_info, so saved baselines carry them too).
"""

import pytest

from bench.load.synth import generate
from core import Scorer
from tests.perf.perevent import EVENTS, SEED, rows
from tests.perf.seed_path import SeedPath


@pytest.fixture(scope="session")
def payloads() -> list[bytes]:
    """EVENTS synthetic transactions (bench.load.synth, seeded), as Kafka values."""
    print(f"\npayloads: bench.load.synth.generate({EVENTS}, seed={SEED})")
    return generate(EVENTS, seed=SEED).payloads()


@pytest.fixture(scope="session")
def scorer() -> Scorer:
    from core.paths import stateless_model_path

    s = Scorer.load(stateless_model_path())   # the stateless path (state: V1's benchmarks)
    s.score_batch(generate(64, seed=SEED + 1).payloads())  # warm the numba kernels
    return s


@pytest.fixture(scope="session")
def seed_path() -> SeedPath:
    return SeedPath()


@pytest.fixture(scope="session", autouse=True)
def _per_event_table(request):
    """At the end of the session, the µs/event table (the figures the reports quote)."""
    yield
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    if not rows or reporter is None:
        return
    with plugins.get_plugin("capturemanager").global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(f"{'benchmark':58s} {'us/event min':>13s} {'median':>10s}")
        for name, best, median in rows:
            reporter.write_line(f"{name:58s} {best:13.3f} {median:10.3f}")
