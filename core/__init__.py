"""fraudstream core: exactly-once fraud scoring of Kafka micro-batches.

The public API (`from core import ...`); the rest of the package is internal:

    ScoringConfig      everything one scoring process needs (a frozen msgspec Struct)
    TopicNames         the five topics' names: topics=TopicNames.namespaced("ns") for NS.transactions, ...
    Scorer             the fraud model, compiled: Scorer.load(), score_batch(values)
    BatchResult        what score_batch returns: scores, alerts and dead letters by input index
    ScoringConsumer    the transactional loop of one process: run() until stop()
    FraudstreamError   root of every exception the project raises on purpose
    ConfigError        bad configuration, the field's name in the message
    ModelError         the model cannot be loaded or compiled
    PipelineError      the scoring loop cannot continue (fenced, fatal Kafka error)

The service's command line is public too: `core.cli.score`, a click command that
`python -m core` runs and `bench score` re-uses, so both take the same options.
"""

from core.config import ScoringConfig
from core.errors import ConfigError, FraudstreamError, ModelError, PipelineError
from core.topics import TopicNames

__all__ = ["ConfigError", "FraudstreamError", "ModelError", "PipelineError", "ScoringConfig", "ScoringConsumer",
           "Scorer", "BatchResult", "TopicNames"]


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


def __dir__():
    return sorted(set(globals()) | set(__all__))   # the lazy names too, for completion
