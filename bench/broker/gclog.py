"""The broker's garbage-collector pauses, from the GC log every node writes.

A young-generation pause stops every broker thread: each record in flight waits it out, so
pauses show directly in the latency tail. Each node logs its pauses with wall-clock
timestamps, so a run can count the ones inside its measurement window:

    [1795890580123ms] GC(98) Pause Young (Normal) (G1 Evacuation Pause) 253M->89M(512M) 19.839ms
"""

import re
from pathlib import Path

import numpy as np

from bench.report.result import BrokerGc

__all__ = ["GC_LOG", "jvm_option", "parse_pauses", "window_summary"]

GC_LOG = "gc.log"
# "Pause Young", "Pause Remark", "Pause Cleanup", "Pause Full": the line is written when the
# pause ends; the number at the end is its length.
_PAUSE = re.compile(r"^\[(\d+)ms\] GC\(\d+\) Pause (\w+).* (\d+(?:\.\d+)?)ms$", re.M)


def jvm_option(node_dir: Path) -> str:
    """The -Xlog option that writes node_dir/gc.log (two files of at most 20 MB)."""
    return f"-Xlog:gc:file={node_dir / GC_LOG}:timemillis:filecount=2,filesize=20m"


def parse_pauses(text: str) -> list[tuple[int, str, float]]:
    """(end time in epoch ms, kind, pause ms) of every pause in a GC log text."""
    return [(int(end), kind, float(ms)) for end, kind, ms in _PAUSE.findall(text)]


def window_summary(node_dirs: list[Path], start_s: float, end_s: float) -> BrokerGc | None:
    """Pauses that ended in [start_s, end_s) on any node: count, p50, max, total and the share
    of the window spent paused (summed over nodes). None when no node has a GC log."""
    logs = [p for d in node_dirs for p in sorted(Path(d).glob(GC_LOG + "*"))]
    if not logs:
        return None
    lo, hi = start_s * 1000, end_s * 1000
    ms = np.array([pause for log in logs for end, _, pause in parse_pauses(_read(log))
                   if lo <= end < hi], dtype=np.float64)
    seconds = max(end_s - start_s, 1e-9)
    if ms.size == 0:
        return BrokerGc(count=0, p50_ms=None, max_ms=None, total_ms=0.0, share=0.0)
    return BrokerGc(count=int(ms.size), p50_ms=float(np.median(ms)), max_ms=float(ms.max()),
                    total_ms=float(ms.sum()), share=float(ms.sum() / 1000 / seconds))


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:   # rotated away between the glob and the read
        return ""
