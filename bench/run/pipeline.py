"""Start and stop the pipeline under test as a user would: a subprocess with command-line flags.

    fraudstream     python -m core --bootstrap B --namespace NS --workers N --group G ...
                    (state off: ... --no-state --model models/fraud-model-stateless.meta.json)
    seed-baseline   python -m bench.run.seed_baseline --bootstrap B --namespace NS --workers N ...

Each run gets its own consumer group (and so its own transactional ids): runs on a shared
broker never fence each other or anyone else's service.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.measure import procs

__all__ = ["PipelineProcess", "command_for", "check_service_options"]


def command_for(pipeline: str, *, bootstrap: str, namespace: str, workers: int, group: str,
                batch=None, kafka: dict | None = None, state: bool = True,
                snapshot_interval_s: float | None = None) -> list[str]:
    """The argv that starts `pipeline` (fraudstream or seed-baseline); state=False runs
    fraudstream without per-card state, so with the model that needs none;
    snapshot_interval_s (None: the service's default) is its --snapshot-interval."""
    module = {"fraudstream": "core", "seed-baseline": "bench.run.seed_baseline"}[pipeline]
    argv = [sys.executable, "-m", module, "--bootstrap", bootstrap, "--namespace", namespace,
            "--workers", str(workers), "--group", group]
    if pipeline == "fraudstream" and batch is not None:
        if batch.max_records is not None:
            argv += ["--batch-max-records", str(batch.max_records)]
        if batch.max_wait_ms is not None:
            argv += ["--batch-max-wait-ms", str(int(batch.max_wait_ms))]
    if pipeline == "fraudstream" and not state:
        from core.paths import stateless_model_path

        argv += ["--no-state", "--model", str(stateless_model_path())]
    elif pipeline == "fraudstream" and snapshot_interval_s is not None:
        argv += ["--snapshot-interval", repr(float(snapshot_interval_s))]
    for key, value in (kafka or {}).items():
        argv += ["-X", f"{key}={value}"]
    return argv


def check_service_options(where: str, *, batch_max_records: int | None = None, batch_max_wait_ms: float | None = None,
                          kafka: dict | None = None, state: bool = True) -> None:
    """ConfigError now, before a broker starts or records are loaded, when `python -m core`
    would refuse these options at its start-up minutes later: its batch limits and the -X
    settings, judged as the service judges them (core.config, then librdkafka)."""
    from core.config import load_config
    from core.errors import ConfigError
    from core.preflight import check_client_settings

    try:
        check_client_settings(load_config(
            batch_max_records=batch_max_records, state=state, kafka=dict(kafka or {}) or None,
            batch_max_wait_ms=None if batch_max_wait_ms is None else int(batch_max_wait_ms)))
    except ConfigError as exc:
        raise ConfigError(f"{where}: the scoring service would refuse it: {exc}") from None


def _terminate_with_parent() -> None:
    # A runner killed outright (SIGKILL, OOM) cannot stop the service it started; ask Linux
    # to SIGTERM it then, so it aborts its transactions instead of scoring on as an orphan.
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the service's own checks are all there is


class PipelineProcess:
    """One started pipeline service; its workers are the service process's children."""

    def __init__(self, argv: list[str], log_path: Path):
        self.argv = argv
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_terminate_with_parent)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def workers(self) -> list[int]:
        return procs.worker_pids(self.proc.pid)

    def all_pids(self) -> list[int]:
        return [self.proc.pid] + procs.descendants(self.proc.pid)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (the service finishes or aborts its open transactions), then SIGKILL."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)
        # orphans of a killed service (its own session) go too
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        time.sleep(0.1)
        self._log.close()
        return self.proc.returncode
