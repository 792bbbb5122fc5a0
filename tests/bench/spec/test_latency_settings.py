"""Settings the latency of `bench run` depends on (see scenarios/targets/latency.yaml)."""

from pathlib import Path

from bench.broker.properties import server_properties
from bench.run.orchestrate import resolve_target
from bench.spec.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_broker_heap_is_not_held_by_the_log_cleaner():
    # 128 MB (Kafka's default) of a 512 MB heap left G1 a ~24 MB eden: a young GC every
    # ~0.4 s at 20,000 tx/s.
    for nodes in (1, 3):
        props = _props(server_properties(19400, nodes, 1, "/tmp/x"))
        assert int(props["log.cleaner.dedupe.buffer.size"]) <= 32 * 1024 * 1024


def test_latency_scenarios_use_the_latency_target():
    for name in ("latency-20k.yaml", "peak.yaml"):
        path = SCENARIOS / name
        scenario = load_scenario(path)
        target = resolve_target(scenario, path)
        assert int(target.scorer["linger.ms"]) <= 5, name
        assert scenario.batch.max_wait_ms is not None and scenario.batch.max_wait_ms <= 10, name
        assert target.bootstrap is None and target.nodes == 1, name   # still the local broker
        # started with its logs on tmpfs: no kernel writeback stalls in a latency run
        assert target.data_dir is not None and target.data_dir.startswith("/dev/shm/"), name
