"""SIGHUP to a running `python -m core` and its workers (the terminal it runs in closed: the
kernel signals the whole process group) while input still arrives, on a real broker. It stops
as on SIGTERM: one line saying so, each worker finishing its transaction, exit 0; a restart
scores the rest, everything exactly once.
Before, SIGHUP's default action killed the supervisor and the workers on the spot (exit -1, no
line; what a worker had open was left to the transaction timeout)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.kafka.eos_harness import (REPO, Service, committed_offsets, finish, make_inputs, namespace_of, produce_inputs,
                                     trickle, verify, wait_drained)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def _hangup_default() -> None:
    # A test run under nohup (or a CI runner that ignores SIGHUP) passes SIG_IGN on, and a
    # service started ignoring SIGHUP keeps ignoring it (core.stopsignals): give the
    # service the disposition a terminal's process has.
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def test_sighup_to_the_process_group_is_a_clean_stop(kafka_bootstrap, fresh_topics, tmp_path):
    names = fresh_topics("hup")
    group = f"hup-{uuid.uuid4().hex[:6]}"
    inputs = make_inputs(8000, 10, seed=95)
    split = len(inputs.records) // 4
    produce_inputs(kafka_bootstrap, names.transactions, inputs, inputs.records[:split])
    tail = trickle(kafka_bootstrap, names.transactions, inputs, inputs.records[split:], tps=1000)   # ~6 s
    log_path = tmp_path / "svc.log"
    restart = None
    with open(log_path, "w") as out:
        # its own session, as under a terminal of its own: SIGHUP goes to its process group only
        proc = subprocess.Popen([sys.executable, "-m", "core", "--bootstrap", kafka_bootstrap, "--namespace",
                                 namespace_of(names), "--group", group, "--workers", "2", "--stats-interval", "2"],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_hangup_default)
        try:
            wait_drained(kafka_bootstrap, group, names.transactions, timeout=120)   # the first quarter
            tail.start()
            time.sleep(2)
            assert tail.is_alive(), "the input ended before the SIGHUP: nothing was mid-run"
            os.killpg(proc.pid, signal.SIGHUP)
            code = proc.wait(60)
            done = sum(max(0, o) for o in committed_offsets(kafka_bootstrap, group, names.transactions,
                                                            range(6)).values())
            tail.join()
            restart = Service(kafka_bootstrap, names, group, tmp_path, workers=2, tag="restart")
            wait_drained(kafka_bootstrap, group, names.transactions, timeout=120, service=restart)
            assert restart.stop() == 0, restart.tail()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            finish(tail, restart)
    log = log_path.read_text()
    assert code == 0, log[-3000:]
    assert "SIGHUP: stopping workers" in log and "all workers stopped" in log, log[-3000:]
    assert "died with exit code" not in log and "Traceback" not in log, log[-3000:]
    assert log.count(": stopped. processed=") == 2, log[-3000:]   # each worker's own clean stop
    assert split <= done < len(inputs.records), (split, done)    # it stopped mid-run, input left
    assert verify(kafka_bootstrap, names, inputs).exactly_once()
