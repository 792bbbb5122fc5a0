"""How the partitions of a killed scoring process came back, read from the service's log.

`bench run` keeps the service's log (stdout and stderr of `python -m core`) beside the result.
Its workers log, with a millisecond timestamp and their pid, every event this needs:

    ... worker-2 pid=4711 INFO NAME: assigned [2, 5]
    ... worker-2 pid=4790 INFO NAME: restored NS.fraud-card-state[2]: 1,234 cards from 1,300 records in 0.05 s
    ... worker-2 pid=4790 INFO NAME: replayed NS.transactions[2] from 900 to 1000: 100 records in 0.01 s; restore + replay 0.06 s, 1234 cards
    ... worker-2 pid=4790 INFO NAME: committed the first batch of NS.transactions[2] since assigned

(the `replayed` line only from a service that restores from snapshots). The log, not /metrics:
the restore gauges are one value per process (the last restore's seconds, the restore in
progress) and a scrape every second misses a restore of 50 ms, while the log has each
restore's partition, records and duration and the time of each partition's first commit, and
reading it afterwards adds no load to the run being measured.

    events = parse_log(path.read_text())
    restores = restores_after(events, kill_t, pid)   # [bench.report.result.Restore], by partition
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.report.result import Restore

__all__ = ["LogEvent", "parse_log", "read_log", "owned_at", "restores_after"]

# logging's asctime (local time, milliseconds), the worker's slot and pid (core/worker.py)
_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) worker-\d+ pid=(\d+) \w+ \S+: (.*)$")
_PARTS = r"\[([\d, ]*)\]"
_MESSAGES = (
    ("assigned", re.compile(r"^assigned " + _PARTS + "$")),
    ("revoked", re.compile(r"^revoked " + _PARTS + "$")),
    ("lost", re.compile(r"^lost " + _PARTS + "$")),
    ("restored", re.compile(r"^restored \S+?\[(\d+)\]: ([\d,]+) cards from ([\d,]+) records in ([\d.]+) s")),
    ("replayed", re.compile(r"^replayed \S+?\[(\d+)\] from \S+ to \S+: ([\d,]+) records in [\d.]+ s; "
                            r"restore \+ replay ([\d.]+) s")),
    ("committed", re.compile(r"^committed the first batch of \S+?" + _PARTS + " since assigned$")),
)


@dataclass(frozen=True)
class LogEvent:
    """One worker line that matters here. partitions: the listed ones (one for restored and
    replayed); records, cards, seconds: a restore's (replayed: records replayed and the
    restore + replay seconds)."""
    t: float
    pid: int
    kind: str
    partitions: tuple[int, ...]
    records: int | None = None
    cards: int | None = None
    seconds: float | None = None


def _count(text: str) -> int:
    return int(text.replace(",", ""))


def _event(t: float, pid: int, kind: str, m: re.Match) -> LogEvent:
    if kind == "restored":
        return LogEvent(t, pid, kind, (int(m[1]),), _count(m[3]), _count(m[2]), float(m[4]))
    if kind == "replayed":
        return LogEvent(t, pid, kind, (int(m[1]),), _count(m[2]), None, float(m[3]))
    parts = tuple(int(x) for x in m[1].split(",") if x.strip())
    return LogEvent(t, pid, kind, parts)


def parse_log(text: str) -> list[LogEvent]:
    """The events of a service log, in the order written (other lines are skipped)."""
    events = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        for kind, pattern in _MESSAGES:
            found = pattern.match(m[3])
            if found is not None:
                # naive asctime: the local time of this machine, as time.time() is read here
                t = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                events.append(_event(t, int(m[2]), kind, found))
                break
    return events


def read_log(path: Path) -> list[LogEvent]:
    """parse_log of a file (nothing when it cannot be read)."""
    try:
        return parse_log(path.read_text(errors="replace"))
    except OSError:
        return []


def owned_at(events: list[LogEvent], pid: int, t: float) -> list[int]:
    """The partitions process `pid` held at time t, by its own assigned/revoked/lost lines
    (an `assigned` line lists all it holds after the assignment)."""
    held: set[int] = set()
    for e in events:
        if e.t > t:
            break
        if e.pid != pid:
            continue
        if e.kind == "assigned":
            held = set(e.partitions)
        elif e.kind in ("revoked", "lost"):
            held.difference_update(e.partitions)
    return sorted(held)


def _first(events, kind: str, p: int, after: float, pids=None, before: float | None = None):
    for e in events:
        if (e.t >= after and e.kind == kind and p in e.partitions and (pids is None or e.pid in pids)
                and (before is None or e.t <= before)):
            return e
    return None


def restores_after(events: list[LogEvent], kill_t: float, pid: int) -> list[Restore]:
    """For each partition process `pid` held when it was killed at kill_t: which process took
    it over, its restore (the one that process logged before its first commit of it) and the
    seconds from the kill to that process's assignment of it (a restarted process: its start-up
    ends there), to the restore's end and to that first commit."""
    out = []
    later = [e for e in events if e.t >= kill_t and e.pid != pid]
    for p in owned_at(events, pid, kill_t):
        commit = _first(later, "committed", p, kill_t)
        by = None if commit is None else {commit.pid}
        restore = _first(later, "restored", p, kill_t, by, None if commit is None else commit.t)
        replay = None if restore is None else _first(later, "replayed", p, restore.t, {restore.pid},
                                                     None if commit is None else commit.t)
        seconds = None if restore is None else restore.seconds
        done = restore
        if replay is not None:
            seconds, done = replay.seconds, replay
        taker = commit or restore
        assigned = None if taker is None else _first(later, "assigned", p, kill_t, {taker.pid}, taker.t)
        out.append(Restore(
            partition=p, pid=None if taker is None else taker.pid,
            records=None if restore is None else restore.records,
            cards=None if restore is None else restore.cards,
            restore_s=seconds, replayed=None if replay is None else replay.records,
            assigned_after_s=None if assigned is None else round(assigned.t - kill_t, 3),
            restored_after_s=None if done is None else round(done.t - kill_t, 3),
            first_commit_after_s=None if commit is None else round(commit.t - kill_t, 3)))
    return out
