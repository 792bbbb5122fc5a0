"""One scoring process of the service: the entry point the supervisor spawns per slot.

The worker tells its supervisor, through a one-way pipe of its own, when it consumes
(`Ready`) and why it could not start (`Failed`), and says how it ended by its exit code
(core.slots: 2 Kafka error, 3 start-up error, 4 fenced, 5 card state cannot be restored, 6 a
setting refused, 7 Kafka gave up on it). A pipe per worker, not a shared
queue: a worker SIGKILLed mid-write must not leave a lock held for the others, and every
message is far below PIPE_BUF, so it arrives whole or not at all.

It dies with its supervisor: on Linux the kernel sends SIGTERM when the supervisor dies
(PR_SET_PDEATHSIG), elsewhere a thread notices the new parent pid within a second; an orphan
then stops (hard after ORPHAN_EXIT_S), and never calls init_transactions once stopped, so it
cannot fence the slot's replacement started by a new supervisor.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from core.config import ScoringConfig
from core.errors import ConfigError, ExpiredByKafka, FraudstreamError, PipelineError, SettingRefused, StateError
from core.identity import CREDENTIAL_CODES, is_fenced, kafka_error_of
from core.stopsignals import stop_signals
from core.slots import EXIT_EXPIRED, EXIT_FENCED, EXIT_PIPELINE, EXIT_SETTING, EXIT_STARTUP, EXIT_STATE

__all__ = ["worker_main", "exit_code_for", "die_with_parent", "supervisor_gone", "Ready", "Failed", "LeftOpen",
           "STATUS"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1   # <linux/prctl.h>
# An orphan finishes its open transaction if it can do so quickly; past this it exits hard
# (exactly-once does not need its cooperation: the replacement aborts what it left open).
ORPHAN_EXIT_S = 1.5
_MAX_REASON = 1000


class Ready(msgspec.Struct, tag=True):
    """The worker consumes (its transactions are initialised and its topics exist)."""


class Failed(msgspec.Struct, tag=True):
    """The worker is about to exit with `exit_code` because of `reason`."""

    exit_code: int
    reason: str


class LeftOpen(msgspec.Struct, tag=True):
    """The worker stopped while Kafka did not answer, its transaction left open: the supervisor
    aborts it on the way out (a worker's exit code 0 says nothing of it)."""


STATUS = msgspec.msgpack.Decoder(Ready | Failed | LeftOpen)
_encode = msgspec.msgpack.Encoder().encode


def die_with_parent(parent_pid: int) -> bool:
    """Ask the kernel for SIGTERM when the parent dies (Linux); False if it is already gone."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
                log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
        except (OSError, AttributeError) as exc:   # no libc symbol: the parent check remains
            log.warning("prctl unavailable: %s", exc)
    # The parent may have died before prctl: then no signal will ever come.
    return os.getppid() == parent_pid


def supervisor_gone(parent_pid: int) -> bool:
    """Whether the supervisor that started this worker is gone or dying.

    Not only a new parent pid: PR_SET_PDEATHSIG fires when the *thread* that started the
    worker exits, and a SIGKILLed supervisor's threads exit one by one. When its main thread
    goes first, the signal comes while getppid() still names the supervisor, whose main
    thread is then a zombie (2 of 20 SIGKILLs of a parent with 3 more threads, 2026-12-06)."""
    if os.getppid() != parent_pid:
        return True
    try:
        state = Path(f"/proc/{parent_pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):   # no /proc: the orphan watch sees the new parent pid
        return False
    return state in ("Z", "X")


def exit_code_for(exc: FraudstreamError) -> int:
    """The exit code that tells the supervisor what ended a worker (see core.slots)."""
    if isinstance(exc, ExpiredByKafka):   # "fenced", but by Kafka itself: not a sign of a twin
        return EXIT_EXPIRED
    error = kafka_error_of(exc)
    if is_fenced(error):
        return EXIT_FENCED
    if isinstance(exc, SettingRefused):
        return EXIT_SETTING
    if isinstance(exc, ConfigError) or not isinstance(exc, PipelineError):   # ModelError, ...
        return EXIT_STARTUP
    if error is not None and error.code() in CREDENTIAL_CODES:
        return EXIT_STARTUP
    return EXIT_STATE if isinstance(exc, StateError) else EXIT_PIPELINE


class _Status:
    """The worker's end of its status pipe; a closed pipe (supervisor gone) is ignored."""

    def __init__(self, conn: Any):
        self.conn = conn

    def send(self, msg: Ready | Failed | LeftOpen) -> bool:
        """True if the supervisor got it."""
        try:
            self.conn.send_bytes(_encode(msg))
            return True
        except (OSError, ValueError):
            return False


def worker_main(config_json: bytes, slot: int, parent_pid: int, log_level: int, status_conn: Any) -> None:
    """Entry point of one scoring process (runs in a spawned child)."""
    logging.basicConfig(level=log_level, format=f"%(asctime)s worker-{slot} pid=%(process)d %(levelname)s %(message)s")
    if not die_with_parent(parent_pid):
        log.warning("supervisor %d is gone before this worker started: exiting", parent_pid)
        sys.exit(0)
    status = _Status(status_conn)
    ready = threading.Event()

    def started() -> None:
        ready.set()
        status.send(Ready())

    def fail(exc: FraudstreamError) -> None:
        code, reason = exit_code_for(exc), str(exc)
        told = status.send(Failed(code, reason[:_MAX_REASON]))
        # Before it was ready the reason is the supervisor's to print (its `error:` line, or
        # its restart warning): said here too only when it could not get all of it. A worker
        # that stops while running says why itself, at ERROR, for whoever watches those.
        quiet = not ready.is_set() and told and len(reason) <= _MAX_REASON
        log.log(logging.DEBUG if quiet else logging.ERROR, "worker %d %s: %s", slot,
                "stops" if ready.is_set() else "cannot start", reason)
        sys.exit(code)

    def stuck(what: str, waited: float) -> None:
        # From core.txnwatch's thread, the main thread blocked inside librdkafka for good: only
        # an exit ends it, and its restart resumes from the committed offsets.
        reason = (f"librdkafka has not returned from {what} for {waited:.0f} s, past its own timeout: "
                  "exiting, the restart resumes from the committed offsets")
        status.send(Failed(EXIT_PIPELINE, reason[:_MAX_REASON]))
        log.error("worker %d stops: %s", slot, reason)
        logging.shutdown()
        os._exit(EXIT_PIPELINE)

    from core.gctune import tune_gc_for_batches
    from core.loop import ScoringConsumer

    config = msgspec.json.decode(config_json, type=ScoringConfig)
    try:
        from core.scorer import Scorer

        scorer = Scorer.load(config.model_path)
        # a ConfigError here (a model that needs the state, with state off) is a start-up
        # error: restarting the worker could never cure it
        consumer = ScoringConsumer(config, scorer, slot=slot, on_started=started, on_stuck=stuck)
    except FraudstreamError as exc:
        fail(exc)
    tune_gc_for_batches()
    orphaned = threading.Event()

    def stop_orphan() -> None:
        if not orphaned.is_set():
            orphaned.set()
            log.warning("supervisor %d is gone: stopping", parent_pid)
            consumer.stop()
            hard_exit = threading.Timer(ORPHAN_EXIT_S, os._exit, (EXIT_PIPELINE,))
            hard_exit.daemon = True
            hard_exit.start()

    def on_signal(signum: int, frame: Any) -> None:
        if supervisor_gone(parent_pid):   # PR_SET_PDEATHSIG: the supervisor died
            stop_orphan()
        else:
            consumer.stop()

    for sig in stop_signals():   # a closed terminal signals the whole process group
        signal.signal(sig, on_signal)

    def orphan_watch() -> None:
        # Where PR_SET_PDEATHSIG does not exist (or the signal was missed).
        while not supervisor_gone(parent_pid):
            time.sleep(1.0)
        stop_orphan()

    threading.Thread(target=orphan_watch, daemon=True).start()
    try:
        consumer.run()
    except FraudstreamError as exc:
        fail(exc)
    if consumer.left_open:
        status.send(LeftOpen())
