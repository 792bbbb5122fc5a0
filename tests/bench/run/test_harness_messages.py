"""The runner tells a producer's "done" from a sink's, and keeps each fraud's pattern."""

import numpy as np

from bench.run.harness import Harness


def test_producer_and_sink_done_messages_are_told_apart():
    h = Harness(producers=[], sinks=[])
    positives, patterns = np.array([3, 9], np.int64), np.array([4, 5], np.int8)
    h._absorb(("done", 0, 10, 0, [], (positives, patterns)))
    seqs = np.arange(10, dtype=np.int64)
    h._absorb(("done", 0, seqs, np.zeros(10, bool), np.zeros(0, np.int64), 0, 0))
    assert h.sent == {0: 10}
    assert h._sink_done[0][0] is seqs
    done = h.finish_sinks(timeout=1.0)
    np.testing.assert_array_equal(done["positives"], positives)
    np.testing.assert_array_equal(done["positive_patterns"], patterns)
