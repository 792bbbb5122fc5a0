"""SIGHUP to a running `python -m core` and its workers (the terminal it runs in closed: the
kernel signals the whole process group), on a real broker. It stops as on SIGTERM: one line
saying so, each worker finishing its transaction, exit 0, everything scored exactly once.
Before, SIGHUP's default action killed the supervisor and the workers on the spot (exit -1, no
line; what a worker had open was left to the transaction timeout)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import pytest

from tests.kafka.eos_harness import REPO, make_inputs, namespace_of, produce_inputs, verify, wait_drained

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def _hangup_default() -> None:
    # A test run under nohup (or a CI runner that ignores SIGHUP) passes SIG_IGN on, and a
    # service started ignoring SIGHUP keeps ignoring it (core.stopsignals): give the
    # service the disposition a terminal's process has.
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def test_sighup_to_the_process_group_is_a_clean_stop(kafka_bootstrap, fresh_topics, tmp_path):
    names = fresh_topics("hup")
    group = f"hup-{uuid.uuid4().hex[:6]}"
    inputs = make_inputs(800, 10, seed=95)
    produce_inputs(kafka_bootstrap, names.transactions, inputs)
    log_path = tmp_path / "svc.log"
    with open(log_path, "w") as out:
        # its own session, as under a terminal of its own: SIGHUP goes to its process group only
        proc = subprocess.Popen([sys.executable, "-m", "core", "--bootstrap", kafka_bootstrap, "--namespace",
                                 namespace_of(names), "--group", group, "--workers", "2", "--stats-interval", "2"],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_hangup_default)
        try:
            wait_drained(kafka_bootstrap, group, names.transactions, timeout=120)
            os.killpg(proc.pid, signal.SIGHUP)
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    log = log_path.read_text()
    assert code == 0, log[-3000:]
    assert "SIGHUP: stopping workers" in log and "all workers stopped" in log, log[-3000:]
    assert "died with exit code" not in log and "Traceback" not in log, log[-3000:]
    assert log.count(": stopped. processed=") == 2, log[-3000:]   # each worker's own clean stop
    assert verify(kafka_bootstrap, names, inputs).exactly_once()
