"""A partition whose card state cannot be restored is held (core.stateholds), without Kafka:
paused at its first unscored record while the others go on, tried again after 1 s, then
doubling to 60 s, and let go when a restore succeeds or the partition is revoked."""

from __future__ import annotations

import logging

import pytest

import core.stateholds as stateholds
from core.errors import StateError
from core.stateholds import FIRST_RETRY_S, MAX_RETRY_S, StateHolds


class Msg:
    def __init__(self, partition, offset):
        self._p, self._o = partition, offset

    def partition(self):
        return self._p

    def offset(self):
        return self._o


class Consumer:
    def __init__(self):
        self.paused, self.calls = set(), []

    def pause(self, tps):
        self.paused.update(tp.partition for tp in tps)

    def resume(self, tps):
        self.paused.difference_update(tp.partition for tp in tps)

    def seek(self, tp):
        self.calls.append(("seek", tp.partition, tp.offset))


class Cards:
    """Card state that partition 1 cannot restore until `fixed`."""

    def __init__(self):
        self.restored, self.fixed = set(), False

    def missing(self, msgs):
        return sorted({m.partition() for m in msgs} - self.restored)

    def restore(self, consumer, parts):
        (p,) = parts
        if p == 1 and not self.fixed:
            raise StateError("w: t.card-state[1] offset 7: undecodable")
        self.restored.add(p)


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(stateholds.time, "monotonic", lambda: now[0])
    return now


def test_a_held_partition_is_retried_after_1_s_then_doubling_to_60_s(clock, caplog):
    caplog.set_level(logging.INFO)
    holds, consumer, cards = StateHolds("w", "t"), Consumer(), Cards()
    batch = [Msg(0, 5), Msg(1, 40), Msg(1, 41), Msg(2, 9)]
    assert [(m.partition(), m.offset()) for m in holds.admit(cards, consumer, batch)] == [(0, 5), (2, 9)]
    assert consumer.paused == {1} and holds
    assert "t[1] held (paused, its other partitions go on; next try in 1 s)" in caplog.text
    delays = []
    delay = FIRST_RETRY_S
    for _ in range(9):
        clock[0] += delay - 0.01
        holds.resume_due(consumer)
        assert consumer.paused == {1}   # not due yet
        clock[0] += 0.01
        holds.resume_due(consumer)
        assert consumer.paused == set() and consumer.calls[-1] == ("seek", 1, 40)   # from its first unscored record
        holds.admit(cards, consumer, [Msg(1, 40)])   # fails again
        delay = holds._held[1][1]
        delays.append(delay)
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0, MAX_RETRY_S, MAX_RETRY_S, MAX_RETRY_S, MAX_RETRY_S]
    cards.fixed = True
    clock[0] += MAX_RETRY_S
    holds.resume_due(consumer)
    assert [m.offset() for m in holds.admit(cards, consumer, [Msg(1, 40), Msg(1, 41)])] == [40, 41]
    assert not holds and consumer.paused == set()
    assert "t[1] restored after being held" in caplog.text


def test_records_of_a_held_partition_fetched_before_the_pause_are_dropped_and_a_revoke_forgets_it(clock):
    holds, consumer, cards = StateHolds("w", "t"), Consumer(), Cards()
    holds.admit(cards, consumer, [Msg(1, 40)])
    assert [m.partition() for m in holds.admit(cards, consumer, [Msg(1, 41), Msg(0, 6)])] == [0]
    holds.forget([1])
    assert not holds
    clock[0] += 3600
    holds.resume_due(consumer)
    assert consumer.paused == {1}   # no longer ours: its new owner decides, nothing resumed here
