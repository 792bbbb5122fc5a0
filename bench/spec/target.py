"""Target files: *which cluster, tuned how* (the OpenMessaging Benchmark driver file).

    bootstrap: null            # null: the embedded local broker (`bench broker up`)
    producer: {linger.ms: "2"} # raw librdkafka properties for the load generator
    consumer: {}               # ... for the latency sink (isolation.level is forced)
    scorer: {}                 # ... passed through to the scoring service

Client properties are librdkafka's own dotted keys, passed through untouched.
"""

from pathlib import Path
from typing import Annotated, Literal

import msgspec

from bench.spec.yamlfile import read_yaml

__all__ = ["Target", "load_target", "DEFAULT_TARGET", "producer_config", "consumer_config",
           "embedded_port"]

Props = dict[str, str | int | float | bool]


class Target(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Brokers and client settings for a run."""
    bootstrap: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    # brokers of the embedded cluster (1 or 3); ignored with an explicit bootstrap
    nodes: Literal[1, 3] = 1
    # first broker port of the embedded cluster (None: bench.broker's default, FRAUDSTREAM_PORT)
    port: Annotated[int, msgspec.Meta(ge=1024, le=65535)] | None = None
    # where the embedded cluster keeps its logs when `bench run` has to start it (None: beside
    # its state in .fraudstream/; see `bench broker up --data-dir`); a running one is used as is
    data_dir: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    producer: Props = {}
    consumer: Props = {}
    scorer: Props = {}


DEFAULT_TARGET = Path(__file__).resolve().parents[2] / "scenarios" / "targets" / "local.yaml"

# Open-loop load: send as soon as due, small linger so batching does not hide latency.
_PRODUCER_DEFAULTS = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 2,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 2_000_000,
    "queue.buffering.max.kbytes": 2_000_000,
    "compression.type": "none",
}
_CONSUMER_DEFAULTS = {
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "fetch.wait.max.ms": 5,
    "fetch.min.bytes": 1,
    "enable.partition.eof": False,
}


def embedded_port(target: Target) -> int:
    """The embedded cluster's first broker port."""
    if target.port is not None:
        return target.port
    from bench.broker import DEFAULT_PORT
    return DEFAULT_PORT


def _str(props: dict) -> dict:
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in props.items()}


def producer_config(target: Target, bootstrap: str) -> dict:
    """librdkafka producer properties for the load generator."""
    return _str({**_PRODUCER_DEFAULTS, **target.producer, "bootstrap.servers": bootstrap})


def consumer_config(target: Target, bootstrap: str, group: str) -> dict:
    """librdkafka consumer properties for the sink; always read_committed."""
    return _str({**_CONSUMER_DEFAULTS, **target.consumer, "bootstrap.servers": bootstrap,
                 "group.id": group, "isolation.level": "read_committed"})


def load_target(path: str | Path | None = None) -> Target:
    """Read a target file (None: scenarios/targets/local.yaml, or defaults if it is missing)."""
    if path is None:
        if not DEFAULT_TARGET.is_file():
            return Target()
        path = DEFAULT_TARGET
    return read_yaml(path, Target, "target")
