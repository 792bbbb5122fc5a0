"""The messages between the runner and its load generator and sink processes.

bench.run.harness (the runner) spawns producer processes (bench.load.generator) and sink
processes (bench.measure.sink). Each child has a command queue from the runner; all report on
one shared results queue. A run goes:

    runner                                  producer i
      spawn ------------------------------>   build the payload pool, create the client
            <------------------------------   Ready(i, pool_seconds)
      Plan(segments, replace) ------------>   send every record at its intended time
            <------------------------------   ProducerTick(i, seconds)      every ~0.5 s
      Stop() ----------------------------->   finish the plan, flush
            <------------------------------   ProducerTick(i, ...), ProducerDone(i, sent, ...)

    runner                                  sink j
      spawn ------------------------------>   consume its share of the outputs, read_committed
            <------------------------------   SinkTick(j, latency, visible, ...)  every ~0.5 s
      Finish() --------------------------->   read until two polls in a row find nothing
            <------------------------------   SinkTick(j, ...), SinkDone(j, score_seqs, ...)

A child whose runner is gone (its parent pid changed) stops by itself. The runner raises
bench.errors.HarnessError when a child exits before its Done, or a Ready / Done does not come
in time.

The messages go through multiprocessing's queues as pickled Structs. A tick (~5 KB from a
producer, ~15 KB from a sink at 20,000 tx/s) takes 5-9 µs to pickle and unpickle as a Struct,
3-5 µs as the tuple it replaced, and a msgpack round trip with typed decoding 3-5 µs but
needs hooks for the numpy arrays of the Done messages (Intel Xeon, 2026-12-05): at two ticks
a second per process, noise either way. Tagged (`kind`): encoded, e.g. with msgspec.json
for a log, a message says which one it is.
"""

import msgspec
import numpy as np

__all__ = ["Ready", "ProducerTick", "SinkTick", "ProducerDone", "SinkDone", "Report",
           "Plan", "Stop", "Finish", "Command"]


class _Message(msgspec.Struct, frozen=True, tag_field="kind", tag=True):
    pass


# ---- children -> runner ------------------------------------------------------------------
class Ready(_Message, frozen=True):
    """Producer `index` has built its pool (in `pool_seconds`) and waits for a plan."""

    index: int
    pool_seconds: float


class ProducerTick(_Message, frozen=True):
    """What producer `index` sent since its last tick, by intended epoch second:
    {second: (records, histogram blob of their publish delay in µs)}; and by the second
    they actually went to the client (sent_at: {second: records}), which shows a generator
    falling behind where counts by intended second cannot."""

    index: int
    seconds: dict[int, tuple[int, bytes]]
    sent_at: dict[int, int] = {}


class SinkTick(_Message, frozen=True):
    """What sink `index` read since its last tick. latency: {intended second: (end-to-end,
    until-scored, scored-to-visible histogram blobs)}; visible: {second read: scores};
    scores, alerts: totals read so far."""

    index: int
    latency: dict[int, tuple[bytes, bytes, bytes]]
    visible: dict[int, int]
    scores: int
    alerts: int


class ProducerDone(_Message, frozen=True):
    """Producer `index` has flushed: records sent, delivery errors (the first five, and how
    many), the sequence numbers it sent labelled fraud (int64) and the bench.load.synth pattern
    code of each (int8)."""

    index: int
    sent: int
    n_errors: int
    first_errors: list[str]
    positives: np.ndarray
    positive_patterns: np.ndarray


class SinkDone(_Message, frozen=True):
    """Sink `index` has read everything committed: sequence numbers of the scores it read
    (int64), whether each said fraud (bool), of the alerts (int64); records without a valid
    `bench` header, and with another run's tag."""

    index: int
    score_seqs: np.ndarray
    flagged: np.ndarray
    alert_seqs: np.ndarray
    no_header: int
    foreign: int


Report = Ready | ProducerTick | SinkTick | ProducerDone | SinkDone


# ---- runner -> children ------------------------------------------------------------------
class Plan(_Message, frozen=True):
    """Constant-rate segments (start epoch ns, duration ns, tx/s of this producer) to send
    after those already planned, or instead of them with `replace`."""

    segments: list[tuple[int, int, float]]
    replace: bool = False


class Stop(_Message, frozen=True):
    """Producer: finish the plan, flush, report ProducerDone."""


class Finish(_Message, frozen=True):
    """Sink: read what is committed now, report SinkDone."""


Command = Plan | Stop | Finish
