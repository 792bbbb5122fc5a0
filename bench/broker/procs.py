"""The local broker's processes as /proc and sockets see them: is a pid ours and alive, is a
port taken, its memory, and stopping a set of pids (TERM, then KILL after a timeout)."""

import os
import signal
import socket
import time
from pathlib import Path

from bench.broker.properties import HOST

__all__ = ["is_our_broker", "port_open", "pid_running", "terminate", "rss_mb"]


def is_our_broker(pid: int | None) -> bool:
    """A Kafka JVM this project started (its command line names fraudstream's paths)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline and b"fraudstream" in cmdline


def port_open(port: int) -> bool:
    """Something accepts connections on HOST:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def pid_running(pid: int) -> bool:
    """Alive and not a zombie (a child of ours is reaped first)."""
    try:
        os.waitpid(pid, os.WNOHANG)  # reap if it is our child
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def terminate(pids: list[int], timeout: float) -> None:
    """SIGTERM, then SIGKILL to whatever still runs after `timeout` seconds."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_running(p) for p in pids):
        time.sleep(0.2)
    for pid in pids:
        if pid_running(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def rss_mb(pid: int) -> float | None:
    """Resident memory in MB, None when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
