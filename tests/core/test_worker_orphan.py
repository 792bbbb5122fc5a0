"""A worker knows its supervisor is dying when PR_SET_PDEATHSIG fires before getppid() changes.

The kernel sends that signal when the *thread* that started the worker exits. A SIGKILLed
supervisor's threads exit one by one, and when its main thread goes first the worker's SIGTERM
arrives while getppid() still names the supervisor: the worker took it for an ordinary stop
(no "supervisor ... is gone" line, no hard exit; test_a_sigkilled_supervisor_takes_its_workers_along
failed so under load). Here the parent's main thread exits on purpose while another of its
threads lives on, which is that moment made to last."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's"),
              pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]

# the worker's side: asks for SIGTERM when its parent dies, and says what it makes of it
CHILD = """
import os, signal, sys, time
from core.worker import die_with_parent, supervisor_gone
parent, ready = int(sys.argv[1]), int(sys.argv[2])
assert die_with_parent(parent)
def on_term(signum, frame):
    print(os.getppid() == parent, supervisor_gone(parent), flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, on_term)
os.write(ready, b"r")
time.sleep(30)
"""

# the supervisor's side: another thread lives on while the main thread, the child's starter, exits
PARENT = """
import ctypes, os, subprocess, sys, threading, time
threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
r, w = os.pipe()
subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid()), str(w)], pass_fds=(w,))
os.close(w)
assert os.read(r, 1) == b"r"
ctypes.CDLL(None).pthread_exit(None)
"""


def test_a_worker_whose_supervisor_lost_its_main_thread_knows_it_is_gone():
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        said = parent.stdout.readline().split()
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    # the first value shows the race was met (getppid() unchanged); the second is the verdict
    assert said == ["True", "True"], said


def test_a_live_supervisor_is_not_gone():
    from core.worker import supervisor_gone

    assert not supervisor_gone(os.getppid())
    assert supervisor_gone(os.getpid())   # not this process's parent
