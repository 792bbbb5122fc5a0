"""fraudstream core: exactly-once fraud scoring of Kafka micro-batches."""

from core.errors import ConfigError, FraudstreamError, ModelError, PipelineError

__all__ = ["ConfigError", "FraudstreamError", "ModelError", "PipelineError"]
