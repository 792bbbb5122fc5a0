"""fraudstream core: exactly-once fraud scoring of Kafka micro-batches."""

from core.config import ScoringConfig
from core.errors import ConfigError, FraudstreamError, ModelError, PipelineError
from core.loop import ScoringConsumer

__all__ = ["ConfigError", "FraudstreamError", "ModelError", "PipelineError", "ScoringConfig", "ScoringConsumer"]
