"""One scoring process per partition: start, watch, restart with backoff, stop on SIGTERM.

Children are started with the `spawn` context and create their Kafka clients themselves
(librdkafka threads do not survive fork). The compiled model is built once here, before any
child starts, so children only load the cached shared object.

Worker identity: slot `i` of this supervisor uses transactional.id ``<prefix>-<i>``. A
restarted slot therefore fences its killed predecessor and aborts its open transaction
immediately. Two supervisors of the same group on one host get distinct prefixes through an
instance lock (``<group>.<host>.<k>``, the lowest free k), so they never fence each other,
while a supervisor restarted after a crash takes k back and fences its orphans.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import signal
import socket
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

from core.config import ScoringConfig
from core.errors import ConfigError, FraudstreamError, PipelineError
from core.metrics import MULTIPROC_ENV, StatsSnapshot, Ticker, aggregate, format_stats, serve
from core.paths import home

__all__ = ["Supervisor", "worker_main", "EXIT_PIPELINE", "EXIT_STARTUP"]

log = logging.getLogger(__name__)

EXIT_PIPELINE = 2   # fatal Kafka error (fenced, unrecoverable): restart
EXIT_STARTUP = 3    # model or config unusable in the child
_QUICK_DEATH_S = 10.0   # a child dying younger than this counts towards "keeps failing"
_MAX_QUICK_DEATHS = 5
# ... and the slot gives up only after failing that way for this long: a broker failover
# (a node is declared dead after 9 s, then elections) must not stop the service for good.
# A child that cannot start (EXIT_STARTUP: model, config, topics) gives up without waiting.
_GIVE_UP_AFTER_S = 60.0
_STOP_GRACE_S = 30.0
_SAMPLE = (b'{"transaction_id":"warm-up","card_hash":"0","amount":1.0,"timestamp":"2026-01-01T00:00:00Z",'
           b'"merchant_category":"grocery",' + b",".join(b'"V%d":0.0' % i for i in range(1, 29)) + b"}")


@dataclass
class _Slot:
    index: int
    process: Any = None
    started: float = 0.0
    quick_deaths: int = 0
    failing_since: float = 0.0
    restart_at: float = 0.0
    restarts: int = 0
    history: list[int] = field(default_factory=list)

    def record_death(self, lived: float, exitcode: int, now: float) -> bool:
        """Count a death of this slot's process; True when the slot should give up."""
        if lived >= _QUICK_DEATH_S or not self.quick_deaths:   # a new streak starts here
            self.quick_deaths, self.failing_since = 1, now
        else:
            self.quick_deaths += 1
        self.history.append(exitcode)
        cannot_start = all(code == EXIT_STARTUP for code in self.history[-_MAX_QUICK_DEATHS:])
        return self.quick_deaths >= _MAX_QUICK_DEATHS and (
            cannot_start or now - self.failing_since >= _GIVE_UP_AFTER_S)


def _claim_instance(group_id: str) -> tuple[int, Any]:
    """Lowest free instance number for `group_id` on this host, held by an flock."""
    locks = home() / "run"
    locks.mkdir(parents=True, exist_ok=True)
    for k in range(1000):
        handle = open(locks / f"{group_id}.{k}.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return k, handle
        except OSError:
            handle.close()
    raise PipelineError(f"more than 1000 supervisors of group {group_id} on this host")


def worker_main(config_json: bytes, slot: int, parent_pid: int, log_level: int) -> None:
    """Entry point of one scoring process (runs in a spawned child)."""
    logging.basicConfig(level=log_level, format=f"%(asctime)s worker-{slot} pid=%(process)d %(levelname)s %(message)s")
    import sys

    from core.gctune import tune_gc_for_batches
    from core.loop import ScoringConsumer

    config = msgspec.json.decode(config_json, type=ScoringConfig)
    try:
        from core.scorer import Scorer

        scorer = Scorer.load(config.model_path)
    except FraudstreamError as exc:
        log.error("worker %d cannot start: %s", slot, exc)
        sys.exit(EXIT_STARTUP)
    consumer = ScoringConsumer(config, scorer, slot=slot)
    tune_gc_for_batches()

    def on_signal(signum: int, frame: Any) -> None:
        consumer.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def orphan_watch() -> None:
        # A SIGKILLed supervisor cannot forward SIGTERM: children stop on their own.
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        log.warning("supervisor %d is gone: stopping", parent_pid)
        consumer.stop()

    threading.Thread(target=orphan_watch, daemon=True).start()
    try:
        consumer.run()
    except ConfigError as exc:
        log.error("worker %d cannot start: %s", slot, exc)
        sys.exit(EXIT_STARTUP)
    except PipelineError as exc:
        log.error("worker %d: %s", slot, exc)
        sys.exit(EXIT_PIPELINE)


class Supervisor:
    """Runs `workers` scoring processes (default: one per input partition) until stopped."""

    def __init__(self, config: ScoringConfig, *, workers: int | None = None, first_slot: int = 0):
        self.config = config
        self.workers = workers
        self.first_slot = first_slot
        self._stopping = threading.Event()
        self._slots: list[_Slot] = []
        self._lock_handle: Any = None

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> int:
        """Blocks until stop() or a child keeps failing; returns the exit code (0 clean, 1 failed)."""
        if not self._stopping.is_set():
            config = self._prepare()
        if self._stopping.is_set():   # before start-up, or while the model compiled (seconds)
            log.info("stopped before any worker started")
            return 0
        metrics_dir = os.environ.get(MULTIPROC_ENV)
        own_dir = metrics_dir is None
        if own_dir:
            metrics_dir = tempfile.mkdtemp(prefix="fraudstream-metrics-")
            os.environ[MULTIPROC_ENV] = metrics_dir
        try:
            serve(config.metrics_port, multiprocess_dir=metrics_dir)   # a port in use: before Kafka
            if config.metrics_port:
                log.info("Prometheus metrics on http://0.0.0.0:%d/metrics", config.metrics_port)
            if self.workers:
                # Only that Kafka answers: missing topics are the workers' start-up error.
                self._input_metadata(config)
            workers = self.workers or self._partition_count(config)
            log.info("starting %d scoring process(es), group %s, ids %s-<slot>, %s", workers, config.group_id,
                     config.transactional_id_prefix, "exactly-once" if config.exactly_once else "AT-LEAST-ONCE")
            ctx = multiprocessing.get_context("spawn")
            child_config = msgspec.json.encode(config.replace(stats_interval_s=0.0, metrics_port=0))
            self._slots = [_Slot(self.first_slot + i) for i in range(workers)]
            for slot in self._slots:
                self._start(ctx, slot, child_config)
            return self._watch(ctx, child_config, metrics_dir)
        finally:
            self._stop_children()
            if own_dir:
                self._drop_metrics_dir(metrics_dir)

    @staticmethod
    def _drop_metrics_dir(metrics_dir: str) -> None:
        import shutil

        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.environ.pop(MULTIPROC_ENV, None)

    def _prepare(self) -> ScoringConfig:
        from core.scorer import Scorer

        t0 = time.perf_counter()
        # Compile (or find cached) once, before any child: a bad model fails here, clearly.
        # One scored batch also fills numba's on-disk cache, so six children starting at
        # once load compiled code instead of compiling it six times.
        Scorer.load(self.config.model_path).warm_up([_SAMPLE, b"{}"])
        log.info("model ready in %.1f s", time.perf_counter() - t0)
        config = self.config
        _check_client_settings(config)
        if config.transactional_id_prefix is None:
            k, self._lock_handle = _claim_instance(config.group_id)
            config = config.replace(transactional_id_prefix=f"{config.group_id}.{socket.gethostname()}.{k}")
        return config

    @staticmethod
    def _input_metadata(config: ScoringConfig) -> Any:
        """The input topic's metadata (None: it does not exist), from a client that logs
        nothing: an unreachable broker is one line after 15 s, not librdkafka's reconnect log."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({**_admin_settings(config.kafka), "bootstrap.servers": config.bootstrap_servers,
                             "log_level": 0})
        topic = config.topics.transactions
        try:
            return admin.list_topics(topic, timeout=15.0).topics.get(topic)
        except KafkaException as exc:
            raise PipelineError(f"cannot reach Kafka at {config.bootstrap_servers}: {exc.args[0].str()}") from None

    @staticmethod
    def _partition_count(config: ScoringConfig) -> int:
        topic = config.topics.transactions
        meta = Supervisor._input_metadata(config)
        if meta is None or meta.error is not None or not meta.partitions:
            raise PipelineError(f"input topic {topic} does not exist on {config.bootstrap_servers}"
                                f" (create it with `bench topics create`)")
        return len(meta.partitions)

    def _start(self, ctx: Any, slot: _Slot, child_config: bytes) -> None:
        proc = ctx.Process(target=worker_main, name=f"fraudstream-worker-{slot.index}",
                           args=(child_config, slot.index, os.getpid(), logging.getLogger().level or logging.INFO))
        proc.start()
        slot.process, slot.started = proc, time.monotonic()
        log.info("worker %d started (pid %d)", slot.index, proc.pid)

    def _watch(self, ctx: Any, child_config: bytes, metrics_dir: str) -> int:
        stats = Ticker(self.config.stats_interval_s)
        before = StatsSnapshot()
        while not self._stopping.wait(0.2):
            now = time.monotonic()
            for slot in self._slots:
                proc = slot.process
                if proc is not None and not proc.is_alive():
                    proc.join()
                    self._mark_dead(proc.pid)
                    lived = now - slot.started
                    if slot.record_death(lived, proc.exitcode, now):
                        log.error("worker %d keeps failing (%d deaths in a row in %.0f s, exit codes %s): "
                                  "giving up", slot.index, slot.quick_deaths, now - slot.failing_since,
                                  slot.history[-_MAX_QUICK_DEATHS:])
                        return 1
                    delay = min(0.25 * 2 ** (slot.quick_deaths - 1), 10.0)
                    slot.process, slot.restart_at = None, now + delay
                    log.warning("worker %d (pid %d) died with exit code %s after %.1f s; restarting in %.2f s",
                                slot.index, proc.pid, proc.exitcode, lived, delay)
                elif proc is None and now >= slot.restart_at:
                    slot.restarts += 1
                    self._start(ctx, slot, child_config)
            elapsed = stats.due()
            if elapsed:
                try:
                    snap = aggregate(metrics_dir)
                except (OSError, ValueError, struct.error) as exc:
                    # The stats line is informative: a metrics file in a bad state must not
                    # stop the workers' supervisor.
                    log.warning("stats unavailable this interval: %s", exc)
                    continue
                log.info("%s", format_stats(snap, before, elapsed, f"all {len(self._slots)} workers"))
                before = snap
        return 0

    @staticmethod
    def _mark_dead(pid: int) -> None:
        from prometheus_client import multiprocess

        try:
            multiprocess.mark_process_dead(pid)
        except OSError:
            pass

    def _stop_children(self) -> None:
        live = [s.process for s in self._slots if s.process is not None and s.process.is_alive()]
        for proc in live:
            os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_S
        for proc in live:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.warning("worker pid %d ignored SIGTERM for %.0f s: killing it", proc.pid, _STOP_GRACE_S)
                proc.kill()
                proc.join()
        if live:
            log.info("all workers stopped")


def _check_client_settings(config: ScoringConfig) -> None:
    """Let librdkafka judge the producer and consumer settings once, here: a bad -X key is one
    line at start-up instead of a traceback in every worker it restarts."""
    from confluent_kafka import Consumer, KafkaException, Producer

    from core.txn import consumer_settings, producer_settings

    for kind, make, settings in (("producer", Producer, producer_settings(config, 0)),
                                 ("consumer", Consumer, consumer_settings(config, 0))):
        try:
            client = make({**settings, "log_level": 0})   # connects only when used
        except KafkaException as exc:
            raise ConfigError(f"Kafka {kind} settings: {exc.args[0].str()}") from None
        if kind == "consumer":
            client.close()


def _admin_settings(kafka: dict[str, str]) -> dict[str, str]:
    """Passthrough keys an AdminClient accepts (consumer/producer-only keys dropped)."""
    admin_ok = ("security.", "ssl.", "sasl.", "client.", "socket.", "broker.", "metadata.", "reconnect.",
                "api.", "log.", "debug")
    return {k: v for k, v in kafka.items() if k.startswith(admin_ok)}
