"""What the per-card state shows on /metrics and the stats line: cards, bytes, restore and
replay progress, the last restore, and the changelog written by snapshots."""

from __future__ import annotations

__all__ = ["StateGauges", "RestoreStats", "state_summary"]


class StateGauges:
    """Prometheus gauges and counters of the state (per process; the supervisor sums the live
    ones)."""

    _made: "StateGauges | None" = None

    def __init__(self):
        from prometheus_client import Counter, Gauge

        def gauge(name: str, text: str, mode: str = "livesum") -> Gauge:
            return Gauge(name, text, multiprocess_mode=mode)

        self.cards = gauge("fraudstream_state_cards", "Cards in the per-card state")
        self.bytes = gauge("fraudstream_state_bytes", "Memory of the per-card state (bytes)")
        self.restoring = gauge("fraudstream_state_restoring_partitions", "Partitions being restored now")
        self.restored = gauge("fraudstream_state_restore_records", "Changelog records read by the restore in progress")
        self.restore_end = gauge("fraudstream_state_restore_target_records",
                                 "Changelog records the restore in progress reads at most")
        self.replayed = gauge("fraudstream_state_replay_records",
                              "Input records replayed by the restore in progress (snapshot -> committed offset)")
        self.replay_end = gauge("fraudstream_state_replay_target_records",
                                "Input records the replay in progress applies")
        self.last_seconds = gauge("fraudstream_state_last_restore_seconds",
                                  "Duration of the last restore (changelog read + input replay)", "livemax")
        self.last_replay_records = gauge("fraudstream_state_last_replay_records",
                                         "Input records the last restore replayed", "livemax")
        self.last_replay_seconds = gauge("fraudstream_state_last_replay_seconds",
                                         "Duration of the last restore's input replay", "livemax")
        self.replayed_total = Counter("fraudstream_state_replayed_records", "Input records replayed by restores")
        self.snapshot_records = Counter("fraudstream_state_changelog_records",
                                        "Records written to the card-state changelog (cards, tombstones, markers)")
        self.snapshot_bytes = Counter("fraudstream_state_changelog_bytes",
                                      "Bytes of keys and values written to the card-state changelog")

    @classmethod
    def get(cls) -> "StateGauges":
        if cls._made is None:
            cls._made = cls()
        return cls._made


class RestoreStats:
    """Restore progress for metrics: changelog records read and input records replayed by the
    current restore, the last one's duration and replay, and this process's totals."""

    __slots__ = ("active", "records", "target", "last_seconds", "last_records", "replayed", "replay_target",
                 "last_replayed", "last_replay_seconds", "replayed_total", "written", "written_bytes")

    def __init__(self):
        self.active = 0
        self.records = 0
        self.target = 0
        self.last_seconds = 0.0
        self.last_records = 0
        self.replayed = 0
        self.replay_target = 0
        self.last_replayed = 0
        self.last_replay_seconds = 0.0
        self.replayed_total = 0
        self.written = 0          # changelog records this process wrote (snapshots)
        self.written_bytes = 0

    def text(self) -> str:
        """The restore's part of the stats line."""
        text = ""
        if self.active:
            text += f", restoring {self.records:,}/{self.target:,} records"
            if self.replay_target:
                text += f", replaying {self.replayed:,}/{self.replay_target:,}"
        text += (f", last restore {self.last_seconds:.2f} s ({self.last_records:,} records, "
                 f"{self.last_replayed:,} replayed in {self.last_replay_seconds:.2f} s)")
        return text + f", changelog written {self.written:,} records {self.written_bytes / 1e6:,.1f} MB"


def state_summary(values: dict[str, float]) -> str:
    """The state's part of the supervisor's stats line, from the live workers' gauges summed
    (core.metrics.aggregate); "" when no worker keeps state."""
    if "fraudstream_state_cards" not in values:
        return ""

    def v(name: str) -> float:
        return values.get(f"fraudstream_state_{name}", 0.0)

    text = f" | state {v('cards'):,.0f} cards {v('bytes') / 1e6:,.1f} MB"
    if v("restoring_partitions"):
        text += (f", restoring {v('restoring_partitions'):.0f} partition(s): {v('restore_records'):,.0f}/"
                 f"{v('restore_target_records'):,.0f} records")
        if v("replay_target_records"):
            text += f", replaying {v('replay_records'):,.0f}/{v('replay_target_records'):,.0f}"
    if v("held_partitions"):
        text += f", {v('held_partitions'):.0f} partition(s) held (see the errors)"
    if v("last_restore_seconds"):
        text += f", last restore {v('last_restore_seconds'):.2f} s"
    return text
