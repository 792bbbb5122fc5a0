"""Kernel writeback settings, and the hint when they stall a broker on the same machine.

Linux writes dirty page cache back once it is `dirty_expire_centisecs` old (default 3000: 30 s).
A local broker appending tens of MB/s then gets ~1 GB flushed at once, about 30 s into a run,
and its appends wait on pages under writeback: measured here as a ~1 s stall that set p99 at
20,000 tx/s (887-1,598 ms; 174-209 ms with expiry at 3 s and the flusher waking every 1 s).
A broker whose data sits on tmpfs (`bench broker up --data-dir /dev/shm/...`) has no writeback.
"""

from pathlib import Path

__all__ = ["writeback_settings", "writeback_hint", "STALL_PRONE_EXPIRE_CS"]

_KEYS = ("dirty_expire_centisecs", "dirty_writeback_centisecs", "dirty_background_ratio",
         "dirty_background_bytes")
# Above this expiry a burst of writeback is big enough to stall appends on a busy small VM.
STALL_PRONE_EXPIRE_CS = 500


def writeback_settings(root: Path = Path("/proc/sys/vm")) -> dict[str, int]:
    """The vm.dirty_* settings that shape writeback ({} where /proc/sys is not readable)."""
    out = {}
    for key in _KEYS:
        try:
            out[key] = int((root / key).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out


def writeback_hint(settings: dict[str, int]) -> str | None:
    """One line telling how to avoid writeback stalls, or None when the settings are fine."""
    expire = settings.get("dirty_expire_centisecs")
    if expire is None or expire <= STALL_PRONE_EXPIRE_CS:
        return None
    return (f"kernel writeback (vm.dirty_expire_centisecs={expire}) flushes the local broker's "
            f"page cache in one burst every ~{expire / 100:g} s and stalls it (~1 s here); for "
            f"latency runs: sudo sysctl -w vm.dirty_expire_centisecs=300 "
            f"vm.dirty_writeback_centisecs=100, or keep the broker's data in memory: "
            f"bench broker down; bench broker up --data-dir /dev/shm/fraudstream")
