"""bench.measure.restores: which partitions a killed worker held and how each came back, read
from a service log written the way core's workers write it; the report's failover table."""

from datetime import datetime
from pathlib import Path

import msgspec
import pytest
from rich.console import Console

from bench.measure.restores import owned_at, parse_log, restores_after
from bench.report.result import FaultEvent, Restore, encode_result, read_result
from bench.report.text import print_result

T0 = 1_796_519_500.0     # 2026-12-06, a whole second
NAME = "bench.failover-x.vm-1"


def _line(t: float, slot: int, pid: int, message: str, level: str = "INFO") -> str:
    stamp = datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") + f",{round((t % 1) * 1000):03d}"
    return f"{stamp} worker-{slot} pid={pid} {level} {NAME}-{slot}: {message}"


def _service_log(snapshots: bool = False) -> str:
    """Two workers; at T0+10 pid 101 (slot 0, partitions 0 2 4) is killed and slot 0 comes
    back as pid 201, which restores 0 and 2 and commits them; partition 4 it never commits."""
    restored = "restored NS.fraud-card-state[{p}]: {cards} cards from {records} records in {s} s"
    if snapshots:
        restored += " (snapshot at input offset 500)"
    lines = [
        "2026-12-06 01:11:34,730 supervisor INFO worker 0 started (pid 101)",
        _line(T0 + 1.0, 1, 102, "assigned [0, 1, 2, 3, 4, 5]"),
        _line(T0 + 1.1, 1, 102, restored.format(p=0, cards=0, records=0, s="0.01")),
        _line(T0 + 1.2, 1, 102, "committed the first batch of NS.transactions[0, 1, 2, 3, 4, 5] since assigned"),
        "%4|1796519497.483|GETPID|rdkafka#producer-2| [thrd:main]: Failed to acquire transactional PID",
        _line(T0 + 2.0, 1, 102, "revoked [0, 1, 2, 3, 4, 5]"),
        _line(T0 + 2.1, 1, 102, "assigned [1, 3, 5]"),
        _line(T0 + 2.1, 0, 101, "assigned [0, 2, 4]"),
        _line(T0 + 2.2, 0, 101, restored.format(p=0, cards=10, records=12, s="0.02")),
        _line(T0 + 2.3, 0, 101, "committed the first batch of NS.transactions[0, 2, 4] since assigned"),
        _line(T0 + 5.0, 0, 101, "processed=1,000 (100/s) alerts=1 | state 2,000 cards"),
        # killed at T0 + 10; the supervisor restarts slot 0
        "2026-12-06 01:11:44,730 supervisor WARNING worker 0 (pid 101) died with signal 9 (SIGKILL)",
        _line(T0 + 10.3, 1, 102, "committed the first batch of NS.transactions[9] since assigned"),
        _line(T0 + 13.0, 0, 201, "assigned [0, 2, 4]"),
        _line(T0 + 13.4, 0, 201, restored.format(p=2, cards="1,200", records="1,300", s="0.35")),
        _line(T0 + 13.6, 0, 201, restored.format(p=0, cards=1100, records=1150, s="0.20")),
        _line(T0 + 13.75, 0, 201, "committed the first batch of NS.transactions[0, 2] since assigned"),
        _line(T0 + 20.0, 0, 201, restored.format(p=4, cards=9, records=9, s="0.01")),
    ]
    if snapshots:
        lines.insert(-3, _line(T0 + 13.45, 0, 201, "replayed NS.transactions[2] from 500 to 620: 120 records in "
                                                   "0.04 s; restore + replay 0.39 s, 1210 cards"))
    return "\n".join(lines) + "\n"


def test_ownership_follows_assigned_revoked_and_lost_lines():
    events = parse_log(_service_log() + _line(T0 + 30, 1, 102, "lost [3]", "WARNING") + "\n")
    assert owned_at(events, 101, T0 + 1.5) == []
    assert owned_at(events, 102, T0 + 1.5) == [0, 1, 2, 3, 4, 5]
    assert owned_at(events, 102, T0 + 2.05) == []
    assert owned_at(events, 101, T0 + 10.0) == [0, 2, 4]
    assert owned_at(events, 102, T0 + 10.0) == [1, 3, 5]
    assert owned_at(events, 102, T0 + 31.0) == [1, 5]


def test_each_partition_of_the_killed_process_with_its_restore_and_first_commit():
    got = restores_after(parse_log(_service_log()), T0 + 10.0, 101)
    assert got == [
        Restore(partition=0, pid=201, records=1150, cards=1100, restore_s=0.2, assigned_after_s=3.0,
                restored_after_s=3.6, first_commit_after_s=3.75),
        Restore(partition=2, pid=201, records=1300, cards=1200, restore_s=0.35, assigned_after_s=3.0,
                restored_after_s=3.4, first_commit_after_s=3.75),
        # restored later, never committed in the log: no commit, and the restore is the one after
        Restore(partition=4, pid=201, records=9, cards=9, restore_s=0.01, assigned_after_s=3.0,
                restored_after_s=10.0, first_commit_after_s=None),
    ]
    # the kill of a process that held nothing, and a kill before anything was assigned
    assert restores_after(parse_log(_service_log()), T0 + 10.0, 999) == []
    assert restores_after(parse_log(_service_log()), T0 + 0.5, 101) == []


def test_a_service_with_snapshots_reports_restore_plus_replay():
    (_, two, _) = restores_after(parse_log(_service_log(snapshots=True)), T0 + 10.0, 101)
    assert (two.records, two.replayed, two.restore_s, two.restored_after_s) == (1300, 120, 0.39, 3.45)


def test_state_off_gives_the_first_commit_without_a_restore():
    text = "\n".join(ln for ln in _service_log().splitlines() if "restored" not in ln)
    (zero, *_rest) = restores_after(parse_log(text), T0 + 10.0, 101)
    assert zero == Restore(partition=0, pid=201, records=None, cards=None, restore_s=None,
                           assigned_after_s=3.0, restored_after_s=None, first_commit_after_s=3.75)


def _printed(faults) -> list[str]:
    """The printed report of a real result (tests/bench/report/data) with these faults."""
    result = read_result(Path(__file__).parents[1] / "report" / "data" / "peak-no-rate-held.json")
    run = msgspec.structs.replace(result.runs[0], faults=faults)
    console = Console(record=True, width=160, highlight=False)
    print_result(msgspec.structs.replace(result, runs=[run]), console)
    return console.export_text().splitlines()


def test_the_report_shows_a_row_per_partition_and_the_kill_to_commit_summary():
    kill = FaultEvent(t=T0 + 10.0, at_s=8.0, kill="scorer", pid=101,
                      restores=restores_after(parse_log(_service_log()), T0 + 10.0, 101))
    broker = FaultEvent(t=T0 + 20.0, at_s=18.0, kill="broker", node=1)
    lines = _printed([kill, broker])
    (first,) = [ln for ln in lines if ln.startswith("fault: {") and "'scorer'" in ln]
    assert "restores" not in first
    rows = [[c.strip() for c in ln.strip("│").split("│")] for ln in lines if ln.startswith("│ 8 ")]
    assert rows[1] == ["8", "101", "2", "201", "1,300", "1,200", "0.35", "3.00", "3.40", "3.75"]
    assert rows[2][-2:] == ["10.00", "-"]
    assert any("first committed batch: median 3.75 s, max 3.75 s over 2 partition(s); "
               "1 with no commit logged" in ln for ln in lines)
    assert not any("replayed" in ln for ln in lines)
    empty = _printed([msgspec.structs.replace(kill, restores=[])])
    assert any("1 killed scoring process(es) held no partition" in ln for ln in empty)


@pytest.mark.parametrize("restores", [None, []])
def test_fault_events_without_restores_keep_their_old_json(restores):
    event = FaultEvent(t=1.0, at_s=2.0, kill="scorer", pid=7, restores=restores)
    raw = msgspec.json.decode(encode_result(event))
    assert ("restores" in raw) == (restores is not None)
    assert msgspec.json.decode(encode_result(event), type=FaultEvent) == event


def test_a_replay_of_a_partition_with_no_committed_offset_is_parsed():
    # a partition the group never committed: no snapshot, no committed offset, nothing replayed
    events = parse_log(_line(T0, 0, 201, "replayed NS.transactions[3] from - to -: 0 records in 0.00 s; "
                                         "restore + replay 0.02 s, 0 cards") + "\n")
    assert [(e.kind, e.partitions, e.records, e.seconds) for e in events] == [("replayed", (3,), 0, 0.02)]
