"""Shared fixtures. Kafka tests use a real broker started by the project's own code
(`bench broker up`), or the one already running; each test gets topics in a fresh namespace."""

import os
import uuid

import pytest

from core.topics import TopicNames

# The tests ask servers they started on 127.0.0.1 (metrics, health, the alert page,
# chromedriver), never a proxy: urllib and selenium send requests through http_proxy unless
# no_proxy names the host, and no_proxy=localhost does not cover 127.0.0.1.
for _var in ("no_proxy", "NO_PROXY"):
    os.environ[_var] = ",".join(filter(None, (os.environ.get(_var), "127.0.0.1", "localhost")))


@pytest.fixture(scope="module")
def stateless_model():
    """Make the stateless committed model the default for a module whose tests score without
    per-card state (the default model is the stateful one, which refuses to)."""
    from core.paths import stateless_model_path

    old = os.environ.get("FRAUDSTREAM_MODEL")
    os.environ["FRAUDSTREAM_MODEL"] = str(stateless_model_path())
    yield stateless_model_path()
    if old is None:
        os.environ.pop("FRAUDSTREAM_MODEL", None)
    else:
        os.environ["FRAUDSTREAM_MODEL"] = old


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of a running single-node broker (started if none runs)."""
    from bench.broker import ensure_running

    cluster = ensure_running(nodes=1, echo=lambda m: print(m))
    return cluster.bootstrap


@pytest.fixture
def fresh_topics(kafka_bootstrap):
    """Factory: `names = fresh_topics()` creates the topics under a new namespace."""
    from bench.kafka.topics import create_topics, delete_topics

    made: list[TopicNames] = []

    def make(prefix: str = "t") -> TopicNames:
        names = TopicNames.namespaced(f"{prefix}-{uuid.uuid4().hex[:10]}")
        create_topics(kafka_bootstrap, names)
        made.append(names)
        return names

    yield make
    for names in made:
        try:
            delete_topics(kafka_bootstrap, names)
        except Exception as exc:  # cleanup must not mask the test's own result
            print(f"could not delete {names.every()}: {exc}")
