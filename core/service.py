"""Run the scoring service: the supervisor with signal handling, from a config or flags.

`python -m core` and `bench score` (one command, core.cli) are a thin front end over `run_service`.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

from core.config import ScoringConfig, load_config
from core.supervisor import Supervisor
from core.stopsignals import stop_signals

__all__ = ["run_service", "build_config"]

log = logging.getLogger(__name__)


def build_config(config_path: str | Path | None = None, *, kafka_pairs: tuple[str, ...] = (),
                 **overrides: Any) -> ScoringConfig:
    """ScoringConfig from an optional YAML file, flag overrides and `key=value` librdkafka pairs."""
    from core.errors import ConfigError

    kafka = {}
    for pair in kafka_pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"kafka setting {pair!r}: expected key=value (librdkafka's own key)")
        kafka[key.strip()] = value
    config = load_config(config_path, kafka=kafka or None, **overrides)
    if not config.state and config.model_path is None and not os.environ.get("FRAUDSTREAM_MODEL"):
        # the committed default model reads the card state: without state, its stateless sibling
        from core.paths import stateless_model_path

        config = config.replace(model_path=str(stateless_model_path()))
    return config


def run_service(config: ScoringConfig, *, workers: int | None = None, first_slot: int = 0,
                log_level: int = logging.INFO, early_signals: list[int] | None = None) -> int:
    """Run until SIGTERM, SIGINT or SIGHUP; returns the process exit code (0). Raises FraudstreamError for
    what ends the service: a start-up error, an instance id in use by a live twin.

    `early_signals`: signals that arrived before this was called (it then stops at once)."""
    logging.basicConfig(level=log_level, format="%(asctime)s supervisor %(levelname)s %(message)s")
    logging.getLogger().setLevel(log_level)
    log.info("config: %s", config)
    supervisor = Supervisor(config, workers=workers, first_slot=first_slot)

    def on_signal(signum: int, frame: Any) -> None:
        log.info("%s: stopping workers (finishing open transactions)", signal.Signals(signum).name)
        supervisor.stop()

    previous = {s: signal.signal(s, on_signal) for s in stop_signals()}
    if early_signals:
        on_signal(early_signals[0], None)
    try:
        return supervisor.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
