"""Processes seen from /proc: CPU time, children, and killing one on purpose (Linux only)."""

import os
import signal
import time
from pathlib import Path

__all__ = ["cpu_seconds", "children", "descendants", "kill_hard", "CpuMeter", "cpu_model", "rss_bytes", "RssWatch"]

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, tid: int | None = None) -> float | None:
    """User + system CPU seconds of pid, or of its thread tid (None if it is gone)."""
    stat = Path(f"/proc/{pid}/task/{tid}/stat" if tid is not None else f"/proc/{pid}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def children(pid: int) -> list[int]:
    """Direct children of pid."""
    out = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            out.extend(int(x) for x in text)
    except OSError:
        pass
    return sorted(set(out))


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for c in children(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def worker_pids(service_pid: int) -> list[int]:
    """The scoring workers under a service process: its multiprocessing children, by pid."""
    kids = [c for c in children(service_pid) if "resource_tracker" not in cmdline(c)]
    return sorted(kids)


def kill_hard(pid: int) -> bool:
    """SIGKILL pid; False if it was already gone."""
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


class CpuMeter:
    """CPU used by named groups of processes between start() and stop(), in cores."""

    def __init__(self):
        self._start: dict[str, dict[int, float]] = {}
        self._t0 = 0.0
        self.result: dict[str, float] = {}

    @staticmethod
    def _sample(groups: dict[str, list[int]]) -> dict[str, dict[int, float]]:
        return {name: {p: c for p in pids if (c := cpu_seconds(p)) is not None}
                for name, pids in groups.items()}

    def start(self, groups: dict[str, list[int]], now: float) -> None:
        self._start, self._t0 = self._sample(groups), now

    def stop(self, groups: dict[str, list[int]], now: float) -> dict[str, float]:
        """Cores used per group; processes born after start() count from zero."""
        end = self._sample(groups)
        wall = max(now - self._t0, 1e-9)
        self.result = {
            name: round(sum(c - self._start.get(name, {}).get(p, 0.0) for p, c in pids.items()) / wall, 3)
            for name, pids in end.items()}
        return self.result


def rss_bytes(pid: int) -> int | None:
    """Resident memory of pid (VmRSS), or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class RssWatch:
    """The summed resident memory of a group of processes, sampled at most every `every_s`:
    the first sample, the peak and the last, with a count (records scored) taken with the
    first and the last, so growth can be told per record."""

    def __init__(self, every_s: float = 1.0):
        self.every_s = every_s
        self.first: tuple[int, int] | None = None   # (bytes, count)
        self.last: tuple[int, int] | None = None
        self.peak = 0
        self._next = 0.0

    def sample(self, pids: list[int], count: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next:
            return
        self._next = now + self.every_s
        total = sum(r for p in pids if (r := rss_bytes(p)) is not None)
        if total == 0:
            return
        self.last = (total, count)
        if self.first is None:
            self.first = self.last
        self.peak = max(self.peak, total)
