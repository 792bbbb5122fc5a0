"""Exceptions raised by fraudstream's core.

    FraudstreamError            root: catch this to catch everything the project raises
    ├── ConfigError             bad configuration (a field's name is in the message)
    │   └── SettingRefused      the broker refuses a client setting (no restart can cure it)
    ├── ModelError              the model cannot be loaded or compiled (raised at start-up)
    ├── PipelineError           the scoring loop cannot continue (fatal Kafka error, fenced)
    │   ├── StateError          per-card state cannot be restored (e.g. an undecodable record)
    │   └── ExpiredByKafka      Kafka gave up on the worker's transaction or membership (not a twin)
    └── StartupError            the service cannot start: a worker could not (model, topics, credentials)
"""

__all__ = ["FraudstreamError", "ConfigError", "SettingRefused", "ModelError", "PipelineError", "StateError", "ExpiredByKafka",
           "StartupError"]


class FraudstreamError(Exception):
    """Root of every exception fraudstream raises on purpose."""


class ConfigError(FraudstreamError):
    """Configuration is invalid; the message names the offending field."""


class SettingRefused(ConfigError):
    """The broker refuses one of the clients' settings (kafka.<key> is in the message). Raised
    while scoring, not at start-up; every restart would meet it again, so the service stops."""


class ModelError(FraudstreamError):
    """The fraud model cannot be loaded, compiled or used."""


class PipelineError(FraudstreamError):
    """The scoring pipeline hit an error it must not continue past."""


class StateError(PipelineError):
    """The per-card state of a partition cannot be restored; the message names the changelog
    topic, partition and offset. The partition is held (core.stateholds) rather than scored
    from a wrong state."""


class ExpiredByKafka(PipelineError):
    """Kafka gave up on the worker - aborted its transaction, open past transaction.timeout.ms,
    or dropped it while Kafka was unreachable - and now answers as it would a process whose ids
    another one took ("fenced"). Most likely no other process has them: the restart resumes
    from the committed offsets, and the supervisor does not count it as a sign of a twin."""


class StartupError(FraudstreamError):
    """The service cannot start; the message is the reason its worker gave."""
