"""fraudstream core: exactly-once fraud scoring of Kafka micro-batches."""

from core.config import ScoringConfig
from core.errors import ConfigError, FraudstreamError, ModelError, PipelineError

__all__ = ["ConfigError", "FraudstreamError", "ModelError", "PipelineError", "ScoringConfig", "ScoringConsumer",
           "Scorer", "BatchResult"]


def __getattr__(name):
    # Scorer pulls in numba and the model stack (~1 s), ScoringConsumer the Kafka client and
    # Prometheus (~0.15 s): load them on first use, so that `import core` (and `bench --help`)
    # stays fast and `python -m core` handles SIGTERM from its first milliseconds.
    if name in ("Scorer", "BatchResult"):
        from core import scorer

        return getattr(scorer, name)
    if name == "ScoringConsumer":
        from core.loop import ScoringConsumer

        return ScoringConsumer
    raise AttributeError(f"module 'core' has no attribute {name!r}")
