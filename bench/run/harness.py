"""The load generator and sink processes of one run, and the timeline their reports feed.

    h = Harness(producers=[...ProducerSpec], sinks=[...SinkSpec])
    h.start()                      # spawn; returns once every payload pool is built
    h.plan([(start_ns, duration_ns, tps)])   # total tps, split evenly across producers
    h.pump(0.5)                    # absorb reports for up to 0.5 s
    sent = h.stop_producers()      # flush; {producer index: records sent}
    done = h.finish_sinks()        # sequence numbers read, for the verdict
"""

import multiprocessing as mp
import queue
import time

import numpy as np

from bench.errors import HarnessError
from bench.load.generator import producer_main
from bench.measure.sink import sink_main
from bench.measure.timeline import Timeline
from bench.run.protocol import Finish, Plan, ProducerDone, ProducerTick, Ready, Report, SinkDone, SinkTick, Stop

__all__ = ["Harness"]


class Harness:
    """Spawned producer and sink children, talking through queues (bench.run.protocol)."""

    def __init__(self, producers: list, sinks: list):
        ctx = mp.get_context("spawn")  # librdkafka threads do not survive fork
        self.results = ctx.Queue()
        self.timeline = Timeline()
        self._p_cmd = [ctx.Queue() for _ in producers]
        self._s_cmd = [ctx.Queue() for _ in sinks]
        self.producers = [ctx.Process(target=producer_main, args=(spec, q, self.results),
                                      name=f"bench-producer-{spec.index}", daemon=True)
                          for spec, q in zip(producers, self._p_cmd)]
        self.sinks = [ctx.Process(target=sink_main, args=(spec, q, self.results),
                                  name=f"bench-sink-{spec.index}", daemon=True)
                      for spec, q in zip(sinks, self._s_cmd)]
        self._ready: set[int] = set()
        self.pool_seconds = 0.0
        self.sent: dict[int, int] = {}
        self.delivery_errors: list[str] = []
        self.n_delivery_errors = 0
        self.positives: list = []
        self.positive_patterns: list = []
        self._sink_done: dict[int, SinkDone] = {}

    def pids(self) -> dict[str, list[int]]:
        return {"loadgen": [p.pid for p in self.producers if p.pid],
                "sink": [p.pid for p in self.sinks if p.pid]}

    def start(self, timeout: float = 300.0) -> None:
        for p in self.sinks + self.producers:
            p.start()
        self._wait_for(self._ready, len(self.producers), "load generator not ready", timeout)

    def check_alive(self) -> None:
        """Raise if a generator or sink process ended before reporting it was done."""
        done = [p for i, p in enumerate(self.producers) if i in self.sent]
        done += [p for i, p in enumerate(self.sinks) if i in self._sink_done]
        for p in self.producers + self.sinks:
            if p.exitcode is not None and p not in done:
                how = (f"killed by signal {-p.exitcode}" if p.exitcode < 0
                       else f"exit code {p.exitcode}")
                raise HarnessError(f"{p.name} (pid {p.pid}) ended during the run: {how}")

    def _wait_for(self, reported, expected: int, what: str, timeout: float) -> None:
        """Absorb reports until `reported` holds `expected` entries; fail on a dead child."""
        deadline = time.monotonic() + timeout
        while len(reported) < expected:
            if time.monotonic() > deadline:
                raise HarnessError(f"{what} within {timeout:.0f}s")
            self.check_alive()
            self.pump(0.2)

    def pump(self, timeout: float = 0.1) -> None:
        """Absorb reports from the children for up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                msg = self.results.get(timeout=max(left, 0.001)) if left > 0 else self.results.get_nowait()
            except queue.Empty:
                return
            self._absorb(msg)

    def _absorb(self, msg: Report) -> None:
        match msg:
            case ProducerTick(index=i, seconds=seconds, sent_at=sent_at):
                self.timeline.producer_tick(seconds, i, sent_at=sent_at)
            case SinkTick(index=i, latency=latency, visible=visible, scores=scores, alerts=alerts):
                self.timeline.sink_tick(i, latency, visible, scores, alerts)
            case Ready(index=i, pool_seconds=seconds):
                self._ready.add(i)
                self.pool_seconds = max(self.pool_seconds, seconds)
            case ProducerDone(index=i):
                self.sent[i] = msg.sent
                self.n_delivery_errors += msg.n_errors
                self.delivery_errors.extend(msg.first_errors)
                self.positives.append(msg.positives)
                self.positive_patterns.append(msg.positive_patterns)
            case SinkDone(index=i):
                self._sink_done[i] = msg
            case _:
                raise HarnessError(f"unknown message from a load generator or sink: {msg!r}")

    def plan(self, segments, replace: bool = False) -> None:
        """Send constant-rate segments (start_ns, duration_ns, total tps) to every producer."""
        n = len(self.producers)
        plan = Plan([(int(s), int(d), tps / n) for s, d, tps in segments], replace)
        for q in self._p_cmd:
            q.put(plan)

    def stop_producers(self, timeout: float = 120.0) -> dict[int, int]:
        """Let the plan end, flush, and return {producer index: records sent}."""
        for q in self._p_cmd:
            q.put(Stop())
        self._wait_for(self.sent, len(self.producers), "load generator did not finish", timeout)
        return dict(self.sent)

    def finish_sinks(self, timeout: float = 120.0) -> dict:
        """Stop the sinks once they read nothing new; their sequence numbers, concatenated."""
        for q in self._s_cmd:
            q.put(Finish())
        self._wait_for(self._sink_done, len(self.sinks), "latency sink did not finish", timeout)
        parts = list(self._sink_done.values())
        return {"score_seqs": np.concatenate([p.score_seqs for p in parts]),
                "flagged": np.concatenate([p.flagged for p in parts]),
                "alert_seqs": np.concatenate([p.alert_seqs for p in parts]),
                "no_header": sum(p.no_header for p in parts), "foreign": sum(p.foreign for p in parts),
                "positives": np.concatenate(self.positives) if self.positives else np.zeros(0, np.int64),
                "positive_patterns": (np.concatenate(self.positive_patterns) if self.positive_patterns
                                      else np.zeros(0, np.int8))}

    def close(self) -> None:
        # only processes that were started: close() also runs after a failed start
        started = [p for p in self.producers + self.sinks if p.pid is not None]
        for p in started:
            if p.is_alive():
                p.terminate()
        for p in started:
            p.join(5)
            if p.is_alive():
                p.kill()
