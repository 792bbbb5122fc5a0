"""fraudstream core: exactly-once fraud scoring of Kafka micro-batches."""

from core.config import ScoringConfig
from core.errors import ConfigError, FraudstreamError, ModelError, PipelineError
from core.loop import ScoringConsumer

__all__ = ["ConfigError", "FraudstreamError", "ModelError", "PipelineError", "ScoringConfig", "ScoringConsumer",
           "Scorer", "BatchResult"]


def __getattr__(name):
    # Scorer pulls in numba and the model stack (~1 s): load it on first use, so that
    # `import core` (and `bench --help`) stays fast.
    if name in ("Scorer", "BatchResult"):
        from core import scorer

        return getattr(scorer, name)
    raise AttributeError(f"module 'core' has no attribute {name!r}")
