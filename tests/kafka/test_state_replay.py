"""The per-card state is exactly once: replay-identical scores through kills, a zombie and a
rebalance (issue #19, item 3).

The same input goes to two topic namespaces on the same broker (one producer, the same keys:
the same partitions, in the same order). Run A scores it undisturbed, with the default 5 s
between card-state snapshots. Run B scores it with a snapshot every second while, in turn:
1. a worker inside a transaction is SIGSTOPped until the rest of the group has taken its
   partitions over (its session expired), then continued: a zombie, whose transaction must
   fail (the group refuses its offsets) and which must find its partitions lost;
2. a second service joins the group, is assigned partitions and commits a batch of them;
3. >= 5 workers of the first service are SIGKILLed while input flows, each inside a
   transaction: every transaction is held open 50 ms after its outputs were produced
   (core.faults `stall`), and a worker is killed while its main thread sleeps there
   (eos_harness `in_txn`). The aborted records are counted on fraud-scores read_uncommitted,
   and the killed workers' replacements restore the state from the last snapshot plus a
   replay of the input since it (asserted from the log);
4. the second service leaves, and the test waits until its partitions are assigned back.
Both runs must be exactly once (every valid transaction scored once, the dead letters once), and
for every transaction_id the `card` object (the velocity features) and fraud_score must be
identical between them, whatever the snapshot interval, batch splits and restores. Cards repeat
a lot (2,000 cards, Zipf-skewed, bursts), so the features depend on history.
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
import uuid

import msgspec
import pytest

import core.scorer  # noqa: F401 - the service scores with it: an import error fails here, never skips
from core.snapshot import MARKER_KEY
from tests.kafka.eos_harness import (Service, aborted_by_kills, finish, make_inputs, produce_inputs, trickle, verify, wait_drained,
                                     wait_first_commit)
from tests.kafka.kafka_io import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]

N_VALID = 30_000
N_HOSTILE = 60
SYNTH = {"fraud_rate": 0.03, "n_cards": 2_000, "card_skew": 0.8, "span_s": 4 * 3600.0}
MIN_KILLS = 5
KILL_GAP_S = (0.5, 1.5)
# Run B's input after its first commit arrives at this rate for ~30 s: the zombie (~10 s until
# its partitions move), the joiner's first commit (~5 s) and the kills (~5 s) need it flowing.
# It pauses from the takeover of the zombie's partitions until the joiner is assigned some: the
# joiner's start-up takes longer the slower the machine, and a kill needs a worker inside a
# transaction, which none is once the input is done (then "only N kills in 90 s").
TAIL_SHARE, TAIL_TPS = 0.7, 700
SESSION_MS = 6_000       # the broker's group.min.session.timeout.ms: the zombie part stays short
WORKERS = 3
PHASE_S = 90.0           # the longest a takeover, join or rebalance back may take
# A killed transaction's outputs were produced at most this long before the kill (the stall
# is 50 ms); the zombie's and the rebalances' aborted transactions are seconds away from any kill.
KILL_TXN_S = 0.5
# small transactions: many commits (and restores) per run
SERVICE_X = ("-X", "linger.ms=5", "-X", f"session.timeout.ms={SESSION_MS}",
             "--batch-max-records", "500")
# run B: a snapshot per partition every second, so restores replay input and some aborted
# transactions carry one
STORM_X = SERVICE_X + ("--snapshot-interval", "1")
_OWNERSHIP = re.compile(r"pid=(\d+) \w+ \S+: (assigned|revoked|lost) \[([\d, ]*)\]")


def _seed() -> int:
    seed = int(os.environ.get("EOS_SEED", time.time_ns() % 1_000_000))
    print(f"seed={seed} (rerun with EOS_SEED={seed})")
    return seed


def _scores(bootstrap, names, n) -> dict[str, tuple]:
    decode = msgspec.json.Decoder().decode
    out = {}
    for m in read_all(bootstrap, names.scores, expect=n, idle_s=2.0):
        event = decode(m.value())
        out[event["transaction_id"]] = (event["fraud_score"], event["card"])
    return out


def _numbers(listed: str) -> set[int]:
    return {int(p) for p in listed.split(",") if p.strip()}


def _owned(text: str) -> dict[int, set[int]]:
    """pid -> the partitions it holds at the end of `text` (a service log)."""
    owned: dict[int, set[int]] = {}
    for pid, what, parts in _OWNERSHIP.findall(text):
        if what == "assigned":   # core.loop logs all it holds
            owned[int(pid)] = _numbers(parts)
        else:
            owned[int(pid)] = owned.get(int(pid), set()) - _numbers(parts)
    return owned


def _log(service: Service, since: int = 0) -> str:
    return service.log_path.read_text(errors="replace")[since:]


def _wait_log(service: Service, what: str, done, since: int = 0) -> str:
    """Wait until done(log text after `since`) holds; fails the test after PHASE_S."""
    deadline = time.monotonic() + PHASE_S
    while True:
        text = _log(service, since)
        if done(text):
            return text
        assert service.proc.poll() is None, f"{service.log_path.name} exited waiting for {what}:\n{service.tail()}"
        assert time.monotonic() < deadline, f"no {what} in {PHASE_S:.0f} s:\n{service.tail()}"
        time.sleep(0.2)


def _taken_over(parts: set[int], but: set[int]):
    """done(): pids other than `but` were assigned all of `parts`."""
    def done(text: str) -> bool:
        got = set()
        for pid, what, listed in _OWNERSHIP.findall(text):
            if what == "assigned" and int(pid) not in but:
                got |= _numbers(listed)
        return parts <= got
    return done


def _aborted_markers(bootstrap, names) -> int:
    """Snapshot markers written by aborted transactions (the restores never saw them)."""
    def markers(committed: bool) -> int:
        return sum(m.key() == MARKER_KEY for m in read_all(bootstrap, names.state, idle_s=1.0, committed=committed))
    return markers(False) - markers(True)


def _undisturbed(bootstrap, names, tmp_path):
    group = f"replay-a-{uuid.uuid4().hex[:8]}"
    service = Service(bootstrap, names, group, tmp_path, workers=WORKERS, extra=SERVICE_X, tag="calm")
    try:
        wait_drained(bootstrap, group, names.transactions, timeout=300, service=service)
    finally:
        code = service.stop()
    assert code == 0, service.tail()


def _zombie(service: Service, rng, events: list[str], flowing: threading.Event) -> None:
    """SIGSTOP a busy worker until the others hold its partitions (then pause the input: clear
    `flowing`), SIGCONT it, see it lose them."""
    mark = len(_log(service))
    zombie = service.kill_random_worker(rng, signal.SIGSTOP, in_txn=True)
    assert zombie is not None, service.tail()
    parts = _owned(_log(service)).get(zombie, set())
    assert parts, f"the zombie {zombie} held no partition:\n{service.tail()}"
    events.append(f"SIGSTOP {zombie} holding {sorted(parts)}")
    _wait_log(service, f"takeover of the zombie's partitions {sorted(parts)}", _taken_over(parts, {zombie}), mark)
    flowing.clear()
    mark = len(_log(service))
    os.kill(zombie, signal.SIGCONT)
    # on_lost (its session expired), or the worker stopped as fenced and was restarted
    text = _wait_log(service, f"'lost' from the zombie {zombie}",
                     lambda text: re.search(rf"pid={zombie} WARNING \S+: lost \[|\(pid {zombie}\) died with", text),
                     mark)
    # it was stopped inside a transaction: the group refuses its offsets, so it aborts
    aborted = re.search(rf"pid={zombie} WARNING \S+: (aborting transaction|.* with a transaction open)", text)
    assert aborted or f"(pid {zombie}) died with" in text, f"the zombie's open transaction did not fail:\n{text}"
    events.append(f"taken over, SIGCONT, {'aborted its transaction, ' if aborted else 'died, '}lost")


def _join_and_leave(bootstrap, names, group, service: Service, tmp_path, events: list[str], kill,
                    flowing: threading.Event):
    """A second service joins, commits a batch of the partitions it gets (the input set
    `flowing` again once it has some), `kill()`s meanwhile, and leaves; returns what kill()
    returned once its partitions are assigned back to `service`."""
    joiner = Service(bootstrap, names, group, tmp_path, workers=2, first_slot=WORKERS, extra=STORM_X, tag="joiner")
    try:
        _wait_log(joiner, "partitions for the joiner", lambda text: re.search(r"INFO \S+: assigned \[\d", text))
        flowing.set()
        _wait_log(joiner, "first commit of the joiner", lambda text: "committed the first batch of" in text)
        parts = set().union(*_owned(_log(joiner)).values())
        assert parts, f"the joiner committed but holds nothing:\n{joiner.tail()}"
        events.append(f"joiner assigned {sorted(parts)} and committed")
        killed = kill()
        mark = len(_log(service))
        assert joiner.stop() == 0, joiner.tail()
    finally:
        finish(None, joiner)
    events.append("joiner left")
    _wait_log(service, f"rebalance back of the joiner's {sorted(parts)}", _taken_over(parts, set()), mark)
    events.append("its partitions assigned back")
    return killed


def _kills(service: Service, rng, tail, events: list[str]) -> list[float]:
    """MIN_KILLS kill -9, each inside a transaction; their wall-clock times."""
    deadline = time.monotonic() + PHASE_S
    times = []
    while service.kills < MIN_KILLS:
        assert time.monotonic() < deadline, f"only {service.kills} kills in {PHASE_S:.0f} s:\n{service.tail()}"
        time.sleep(rng.uniform(*KILL_GAP_S))
        pid = service.kill_random_worker(rng, in_txn=True)
        if pid is not None:
            times.append(time.time())
            events.append(f"kill {pid}{'' if tail.is_alive() else ' (input done)'}")
    return times


def _replayed_by_replacements(text: str) -> list[int]:
    """Records replayed by the restores of workers that replaced SIGKILLed ones."""
    killed: set[str] = set()      # slots whose last process died of SIGKILL
    replacements: set[int] = set()
    for line in text.splitlines():
        if died := re.search(r"supervisor WARNING worker (\d+) \(pid \d+\) died with (.*)", line):
            (killed.add if "exit code -9" in died[2] else killed.discard)(died[1])
        elif (started := re.search(r"supervisor INFO worker (\d+) started \(pid (\d+)\)", line)) and started[1] in killed:
            replacements.add(int(started[2]))
            killed.discard(started[1])
    return [int(n) for pid, n in re.findall(r"pid=(\d+) INFO \S+: replayed \S+\[\d+\] from \d+ to \d+: (\d+) records",
                                            text) if int(pid) in replacements]


def _disturbed(bootstrap, names, inputs, split, tmp_path, rng):
    group = f"replay-b-{uuid.uuid4().hex[:8]}"
    service = Service(bootstrap, names, group, tmp_path, workers=WORKERS, extra=STORM_X, tag="storm")
    flowing = threading.Event()
    flowing.set()
    tail = trickle(bootstrap, names.transactions, inputs, inputs.records[split:], TAIL_TPS, gate=flowing)
    events: list[str] = []
    try:
        service.wait_workers(WORKERS)
        wait_first_commit(bootstrap, group, names.transactions, service)
        tail.start()
        started = time.monotonic()
        # a stable group first: the zombie then holds a share of the partitions, not all
        _wait_log(service, f"all {WORKERS} workers assigned",
                  lambda text: sum(1 for parts in _owned(text).values() if parts) >= WORKERS)
        _zombie(service, rng, events, flowing)
        kills = _join_and_leave(bootstrap, names, group, service, tmp_path, events,
                                lambda: _kills(service, rng, tail, events), flowing)
        events.append(f"storm over after {time.monotonic() - started:.0f} s, input "
                      f"{'still flowing' if tail.is_alive() else 'done'}")
        tail.join()
        wait_drained(bootstrap, group, names.transactions, timeout=300, service=service)
    finally:
        print("run B:", ", ".join(events))
        flowing.set()
        finish(tail)
        code = service.stop()
    assert code == 0, service.tail()
    assert service.kills >= MIN_KILLS
    text = service.log_path.read_text(errors="replace")
    assert "died with exit code -9" in text
    # the killed workers' partitions were restored by their replacements from a snapshot older
    # than the committed offset: input replayed (core.snapshot), not just a changelog read
    replayed = _replayed_by_replacements(text)
    print(f"run B: replacements of killed workers replayed input in {sum(n > 0 for n in replayed)} of "
          f"{len(replayed)} restores, {sum(replayed):,} records in all")
    assert sum(replayed) > 0, "no replacement of a killed worker replayed input: the kills caused no replay"
    return kills


def test_scores_and_features_identical_through_kills_zombie_and_rebalance(kafka_bootstrap, fresh_topics, tmp_path,
                                                                           monkeypatch):
    seed = _seed()
    rng = random.Random(seed)
    inputs = make_inputs(N_VALID, N_HOSTILE, seed, **SYNTH)
    calm, storm = fresh_topics("replay-a"), fresh_topics("replay-b")
    split = int(len(inputs.records) * (1 - TAIL_SHARE))
    produce_inputs(kafka_bootstrap, calm.transactions, inputs)
    produce_inputs(kafka_bootstrap, storm.transactions, inputs, inputs.records[:split])
    _undisturbed(kafka_bootstrap, calm, tmp_path)
    # run B's transactions stay open 50 ms after their outputs (a slow broker): kills land
    # inside them (tests/kafka/test_exactly_once.py)
    monkeypatch.setenv("FRAUDSTREAM_FAULTS", "stall:1")
    kills = _disturbed(kafka_bootstrap, storm, inputs, split, tmp_path, rng)

    v = verify(kafka_bootstrap, calm, inputs)
    assert v.exactly_once() and v.scored == N_VALID, v
    v = verify(kafka_bootstrap, storm, inputs)
    assert v.exactly_once() and v.scored == N_VALID, v
    aborted, by_kills = aborted_by_kills(kafka_bootstrap, storm, kills, KILL_TXN_S)
    print(f"run B: {aborted} records of aborted transactions on fraud-scores, {by_kills} while killing")
    assert by_kills > 0, f"no kill landed inside a transaction with outputs ({aborted} aborted in all)"
    print(f"run B: {_aborted_markers(kafka_bootstrap, storm)} snapshot markers in aborted transactions")
    a = _scores(kafka_bootstrap, calm, N_VALID)
    b = _scores(kafka_bootstrap, storm, N_VALID)
    assert len(a) == len(b) == N_VALID
    differ = [t for t in a if a[t] != b[t]]
    assert not differ, f"{len(differ)} differ, e.g. {[(t, a[t], b[t]) for t in differ[:3]]}"
    # the features depend on history: a run that ignored state would not match run A
    busy = sum(1 for _, card in a.values() if card["tx_24h"] > 1)
    assert busy > N_VALID // 2, f"only {busy} transactions saw an earlier one of their card"
    assert any(card["tx_1m"] > 3 for _, card in a.values())
