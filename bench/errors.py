"""Exceptions raised by the benchmark harness, under core's root exception.

    FraudstreamError                (core.errors) root of everything the project raises
    └── BenchError                  the benchmark cannot go on; the message says why
        ├── HarnessError            a load generator or latency sink process died or did not report
        ├── PipelineUnderTestError  the pipeline under test exited, never scored, or did not finish
        ├── BrokerUnreachable       no broker answered at the bootstrap address
        ├── TopicError              a topic is missing or misshapen, or creating, deleting,
        │                           writing or reading it failed
        └── BrokerError             the local broker could not be fetched, started, found or stopped
            └── BrokerLost          the local broker stopped by itself during a run

core's PipelineError means the *scoring loop* cannot continue; what goes wrong around the
pipeline under test is one of these instead. `bench`'s command line turns any FraudstreamError
into one `error:` line and exit code 1.
"""

from core.errors import FraudstreamError

__all__ = ["BenchError", "HarnessError", "PipelineUnderTestError", "BrokerUnreachable", "TopicError",
           "BrokerError", "BrokerLost"]


class BenchError(FraudstreamError):
    """Root of every exception the benchmark harness raises on purpose."""


class HarnessError(BenchError):
    """A load generator or sink process ended early or did not report within its time."""


class PipelineUnderTestError(BenchError):
    """The pipeline under test (the scoring service) exited, never scored a record, or did not
    finish its input in time; the message names its log."""


class BrokerUnreachable(BenchError):
    """No broker answered at the bootstrap address."""


class TopicError(BenchError):
    """A topic is missing or has the wrong shape, or the broker refused or timed out an
    operation on it (create, delete, write, read back)."""


class BrokerError(BenchError):
    """The local Kafka broker could not be fetched, started, found or stopped."""


class BrokerLost(BrokerError):
    """The local broker's every node exited during a run that did not plan it."""
