"""One scoring process per slot: start them, watch them, restart the dead with backoff, stop on SIGTERM.

Children are started with the `spawn` context and create their Kafka clients themselves
(librdkafka threads do not survive fork). The compiled model is built once here, before any
child starts, so children only load the cached shared object.

Only start-up errors end the service: the model, the config and client settings, Kafka at
the bootstrap address, the topics (the card-state changelog too) and the credentials are
checked here before any worker starts, and a worker that cannot start before any worker of
the service was up ends it too (`StartupError`, one `error:` line). After that a slot that
keeps failing backs off and retries forever while the other slots work (policy: core.slots),
and its state shows in the stats line, `/metrics` and `/healthz` (core.health). The one
other way out is an id collision with a live twin (ConfigError naming the id; ids:
core.identity).

On a clean stop, the transactions that killed workers, or workers stopped while Kafka did not
answer, left open are aborted on the way out (init_transactions with their ids), so the
partitions' next owner does not wait for the broker's transaction timeout.
"""

from __future__ import annotations

import errno
import functools
import logging
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from typing import Any

import msgspec

from core.config import ScoringConfig
from core.errors import ConfigError, StartupError
from core.identity import claim_instance_id, lock_explicit_id
from core.preflight import check_client_settings, check_kafka
from core.metrics import (MULTIPROC_ENV, StatsSnapshot, Ticker, aggregate, format_stats, worker_conditions,
                          workers_registry)
from core.slots import (EXIT_FENCED, EXIT_PIPELINE, EXIT_STARTUP, FENCED_IN_A_ROW, TWIN_WINDOW_S, Decision, Slot,
                        SlotView, describe_exit, format_slots)
from core.worker import STATUS, Failed, LeftOpen, Ready, worker_main

__all__ = ["Supervisor", "worker_main", "surplus_text", "EXIT_PIPELINE", "EXIT_STARTUP", "EXIT_FENCED"]

log = logging.getLogger(__name__)

_STOP_GRACE_S = 30.0
_ABORT_LEFT_OPEN_S = 15.0
_ABORT_UNANSWERED_S = 5.0
_TICK_S = 0.2
_SAMPLE = (b'{"transaction_id":"warm-up","card_hash":"0","amount":1.0,"timestamp":"2026-01-01T00:00:00Z",'
           b'"merchant_category":"grocery",' + b",".join(b'"V%d":0.0' % i for i in range(1, 29)) + b"}")


# errors of a fork or pipe that pass once processes, memory or descriptors are freed
_SHORT_OF = frozenset({errno.EAGAIN, errno.ENOMEM, errno.EMFILE, errno.ENFILE})

class _Process:
    """A slot's live process and the supervisor's end of its status pipe."""

    def __init__(self, proc: Any, status: Any):
        self.proc, self.status = proc, status
        self.failure: Failed | None = None
        self.left_open = False

    def read_status(self) -> list[Ready | Failed | LeftOpen]:
        out = []
        try:
            while self.status.poll():
                out.append(STATUS.decode(self.status.recv_bytes()))
        except (EOFError, OSError, msgspec.DecodeError):
            pass   # the worker exited (or was killed mid-message): its exit code tells the rest
        return out


class Supervisor:
    """Runs `workers` scoring processes (default: one per input partition) until stopped."""

    def __init__(self, config: ScoringConfig, *, workers: int | None = None, first_slot: int = 0):
        self.config = config
        self.workers = workers
        self.first_slot = first_slot
        self.clock = time.monotonic
        self._stopping = threading.Event()
        self._slots: list[Slot] = []
        self._procs: dict[int, _Process] = {}
        self._views: tuple[SlotView, ...] = ()
        self._service_up = False
        self._id_lock: Any = None
        self._effective = config   # with the instance id resolved (see _prepare)

    def stop(self) -> None:
        self._stopping.set()

    def views(self) -> tuple[SlotView, ...]:
        """The slots as of the last tick (read by the HTTP thread)."""
        return self._views

    def run(self) -> int:
        """Blocks until stop(); returns 0. Raises FraudstreamError for what ends the service
        (start-up errors, an id collision), after stopping the workers."""
        if not self._stopping.is_set():
            config = self._effective = self._prepare()
        if self._stopping.is_set():   # before start-up, or while the model compiled (seconds)
            log.info("stopped before any worker started")
            return 0
        metrics_dir = os.environ.get(MULTIPROC_ENV)
        own_dir = metrics_dir is None
        if own_dir:
            metrics_dir = tempfile.mkdtemp(prefix="fraudstream-metrics-")
            os.environ[MULTIPROC_ENV] = metrics_dir
        server = None
        try:
            if config.metrics_port:   # a port in use: before Kafka
                from core.health import SlotCollector, serve_http

                registry = workers_registry(metrics_dir)
                registry.register(SlotCollector(self.views))
                server = serve_http(config.metrics_port, registry, self.views,
                                    functools.partial(worker_conditions, metrics_dir))
                log.info("Prometheus metrics on http://0.0.0.0:%d/metrics, health on /healthz", config.metrics_port)
            partitions = check_kafka(config)
            workers = self.workers or partitions
            if workers > partitions:
                log.warning(surplus_text(workers, partitions, config.topics.transactions))
            log.info("starting %d scoring process(es), group %s, ids %s-<slot>, %s", workers, config.group_id,
                     config.txn_id_prefix(), "exactly-once" if config.exactly_once else "AT-LEAST-ONCE")
            ctx = multiprocessing.get_context("spawn")
            child_config = msgspec.json.encode(config.replace(stats_interval_s=0.0, metrics_port=0))
            self._slots = [Slot(self.first_slot + i) for i in range(workers)]
            for slot in self._slots:
                self._start(ctx, slot, child_config)
            self._views = tuple(s.view(self.clock()) for s in self._slots)
            code = self._watch(ctx, child_config, metrics_dir)
            unclean, unanswered = self._stop_children()
            dead = sorted({s.index for s in self._slots if s.left_open} | set(unclean))
            if dead and config.exactly_once:
                _abort_left_open(config, dead, unanswered)
            return code
        finally:
            self._stop_children()
            if server is not None:
                server.shutdown()
                server.server_close()
            if own_dir:
                self._drop_metrics_dir(metrics_dir)
            if self._id_lock is not None:   # the instance id is free for the next service
                self._id_lock.close()
                self._id_lock = None

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
        check_client_settings(config)
        if config.transactional_id_prefix is None:
            if config.instance_id is None:
                instance, self._id_lock = claim_instance_id(config.group_id)
                config = config.replace(instance_id=instance)
            else:
                self._id_lock = lock_explicit_id(config.group_id, config.instance_id)
            log.info("instance id %s", config.instance_id)
        return config

    def _start(self, ctx: Any, slot: Slot, child_config: bytes) -> None:
        pipe = None
        try:
            pipe = ctx.Pipe(duplex=False)
            reader, writer = pipe
            proc = ctx.Process(target=worker_main, name=f"fraudstream-worker-{slot.index}",
                               args=(child_config, slot.index, os.getpid(),
                                     logging.getLogger().level or logging.INFO, writer))
            proc.start()
        except OSError as exc:   # out of processes, memory or descriptors: this slot waits, the others go on
            for end in pipe or ():
                end.close()
            if exc.errno not in _SHORT_OF and not self._service_up:   # e.g. the interpreter gone: no wait cures it
                raise StartupError(f"worker {slot.index}: no process could be started: {exc}") from exc
            now = self.clock()
            slot.not_started(str(exc), now)
            log.error("worker %d: no process could be started (%s); trying again in %.2f s (%d failure(s) in a row)",
                      slot.index, exc, slot.restart_at - now, slot.failures)
            return
        writer.close()   # the child holds its own copy: EOF here once it is gone
        self._procs[slot.index] = _Process(proc, reader)
        slot.started_at(self.clock())
        log.info("worker %d started (pid %d)", slot.index, proc.pid)

    def _watch(self, ctx: Any, child_config: bytes, metrics_dir: str) -> int:
        stats = Ticker(self.config.stats_interval_s)
        before = StatsSnapshot()
        while not self._stopping.wait(_TICK_S):
            now = self.clock()
            for slot in self._slots:
                running = self._procs.get(slot.index)
                if running is not None:
                    self._check(slot, running, now)
                elif now >= slot.restart_at:
                    self._start(ctx, slot, child_config)
            self._views = tuple(s.view(now) for s in self._slots)
            elapsed = stats.due()
            if elapsed:
                try:
                    snap = aggregate(metrics_dir)
                except Exception as exc:   # noqa: BLE001 - OSError, ValueError, struct.error, RuntimeError (a torn file)
                    # The stats line is informative: a metrics file in a bad state must not
                    # stop the workers' supervisor.
                    log.warning("stats unavailable this interval: %s", exc)
                    continue
                log.info("%s; %s", format_stats(snap, before, elapsed, f"all {len(self._slots)} workers"),
                         format_slots(list(self._views)))
                before = snap
        return 0

    def _check(self, slot: Slot, running: _Process, now: float) -> None:
        proc = running.proc
        alive = proc.is_alive()
        # Read after is_alive: what a worker wrote just before it exited is then in the pipe.
        for msg in running.read_status():
            if isinstance(msg, Ready):
                slot.ready(now)
                self._service_up = True
                if slot.restarts:
                    log.info("worker %d is up again (restart %d)", slot.index, slot.restarts)
            elif isinstance(msg, Failed):
                running.failure = msg
            else:
                running.left_open = True
        if alive:
            return
        proc.join()
        running.status.close()
        del self._procs[slot.index]
        self._mark_dead(proc.pid)
        lived = now - slot.started
        decision = slot.exited(proc.exitcode, now, service_up=self._service_up)
        reason = running.failure.reason if running.failure is not None else ""
        if decision is Decision.STARTUP_ERROR:
            raise StartupError(reason or f"worker {slot.index} could not start ({slot.last_exit})")
        if decision is Decision.ID_COLLISION:
            cfg = self._effective
            raise ConfigError(
                f"instance id {cfg.instance_id or cfg.txn_id_prefix()!r} is in use by another live service: "
                f"worker {slot.index} (transactional.id {cfg.txn_id_prefix()}-{slot.index}) was fenced "
                f"{FENCED_IN_A_ROW} times in a row within {TWIN_WINDOW_S:.0f} s of its start; give each service "
                f"its own --instance-id (or none: each FRAUDSTREAM_HOME makes its own)")
        log.warning("worker %d (pid %d) died with %s after %.1f s%s; restarting in %.2f s (%d failure(s) in a row)",
                    slot.index, proc.pid, slot.last_exit, lived, f": {reason}" if reason else "",
                    slot.restart_at - now, slot.failures)

    @staticmethod
    def _mark_dead(pid: int) -> None:
        from prometheus_client import multiprocess

        try:
            multiprocess.mark_process_dead(pid)
        except OSError:
            pass

    def _stop_children(self) -> tuple[list[int], bool]:
        """SIGTERM the live workers and wait for them; returns the slots whose process did not
        end cleanly (killed, dead before the supervisor noticed, or stopped leaving its
        transaction open), and whether one stopped so because Kafka did not answer."""
        live = [p.proc for p in self._procs.values() if p.proc.is_alive()]
        for proc in live:
            os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_S
        for proc in live:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.warning("worker pid %d ignored SIGTERM for %.0f s: killing it", proc.pid, _STOP_GRACE_S)
                proc.kill()
                proc.join()
        unclean, unanswered = [], False
        for i, p in self._procs.items():
            p.proc.join(0)
            left_open = p.left_open or any(isinstance(msg, LeftOpen) for msg in p.read_status())
            p.status.close()
            # (-SIGTERM: still starting, its handler not installed yet: no transaction of its own)
            if p.proc.exitcode not in (0, -signal.SIGTERM):
                log.info("worker %d (pid %d) ended with %s", i, p.proc.pid, describe_exit(p.proc.exitcode))
                unclean.append(i)
            elif left_open:
                log.info("worker %d (pid %d) stopped with its transaction left open", i, p.proc.pid)
                unclean.append(i)
                unanswered = True
        self._procs.clear()
        if live:
            log.info("all workers stopped")
        return unclean, unanswered


def surplus_text(workers: int, partitions: int, topic: str) -> str:
    """The warning for more workers than input partitions: a worker scores whole partitions."""
    idle = workers - partitions
    return (f"{workers} workers for the {partitions} partitions of {topic}: {idle} of them will hold no "
            f"partition (standing by until another member of the group leaves); use --workers {partitions}, "
            f"or give the topic more partitions")


def _abort_left_open(config: ScoringConfig, slots: list[int], unanswered: bool = False) -> None:
    """Abort the transactions that workers killed (or stopped while Kafka did not answer) left open.

    A slot backing off when the service stops has no process to abort what its killed one
    left open, and until transaction.timeout.ms (30 s) that open transaction holds back the
    read_committed readers of the outputs and the partitions' next owner (another service of
    the group). init_transactions with the slot's transactional.id aborts it at once. Not
    after an id collision: the twin's live workers have these ids. All slots at once, each
    for _ABORT_LEFT_OPEN_S, or _ABORT_UNANSWERED_S when a worker just found Kafka not
    answering (Kafka aborts what is left after its transaction timeout: the stop need not wait)."""
    from confluent_kafka import Producer

    from core.txn import producer_settings

    timeout = _ABORT_UNANSWERED_S if unanswered else _ABORT_LEFT_OPEN_S

    def abort(slot: int) -> None:
        try:
            producer = Producer({**producer_settings(config, slot), "log_level": 0})
            try:
                producer.init_transactions(timeout)
                log.info("worker %d: aborted the transaction its last process left open (if any)", slot)
            finally:
                producer.flush(0)
        except Exception as exc:   # noqa: BLE001 - a KafkaException, or a client error: said, never raised
            error = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else repr(exc)
            log.warning("worker %d: cannot abort what it left open: %s (Kafka aborts it after its transaction "
                        "timeout)", slot, error)

    threads = [threading.Thread(target=abort, args=(slot,), name=f"fraudstream-abort-{slot}", daemon=True)
               for slot in slots]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout + 5.0   # librdkafka past its own timeout: the process exits anyway
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
