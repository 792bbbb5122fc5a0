"""A service started by `bench run` must not outlive a runner that was killed outright."""

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from bench.run.pipeline import PipelineProcess


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_service_is_terminated_when_the_runner_is_sigkilled(tmp_path):
    pid_file = tmp_path / "service.pid"
    runner = os.fork()
    if runner == 0:  # the "runner": starts a long-lived service, then waits to be killed
        try:
            service = PipelineProcess([sys.executable, "-c", "import time; time.sleep(120)"],
                                      tmp_path / "service.log")
            written = pid_file.with_suffix(".tmp")   # renamed: never seen empty by the poll below
            written.write_text(str(service.pid))
            written.rename(pid_file)
            time.sleep(120)
        finally:
            os._exit(0)
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    service_pid = int(pid_file.read_text())
    assert _running(service_pid)
    os.kill(runner, signal.SIGKILL)
    os.waitpid(runner, 0)
    deadline = time.monotonic() + 10
    while _running(service_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _running(service_pid)
    if alive:
        os.kill(service_pid, signal.SIGKILL)
    assert not alive, "the service outlived its runner"
