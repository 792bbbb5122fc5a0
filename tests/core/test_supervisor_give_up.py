"""When the supervisor stops restarting a worker slot that keeps dying."""

from core.supervisor import EXIT_PIPELINE, EXIT_STARTUP, _Slot


def _deaths(slot, exitcode, times, lived=2.0):
    return [slot.record_death(lived, exitcode, t) for t in times]


def test_quick_kafka_failures_are_retried_for_a_minute_before_giving_up():
    # A broker failover can make a fresh worker fail for longer than five quick restarts take.
    slot = _Slot(0)
    assert _deaths(slot, EXIT_PIPELINE, [0, 3, 6, 10, 16, 26, 36, 46, 56]) == [False] * 9
    assert slot.record_death(2.0, EXIT_PIPELINE, 61.0) is True


def test_a_worker_that_cannot_start_gives_up_after_five_quick_deaths():
    slot = _Slot(0)
    assert _deaths(slot, EXIT_STARTUP, [0, 1, 2, 3, 4]) == [False] * 4 + [True]


def test_a_long_lived_worker_starts_a_new_streak():
    slot = _Slot(0)
    _deaths(slot, EXIT_PIPELINE, [0, 3, 6, 10])
    assert slot.record_death(3_600.0, EXIT_PIPELINE, 3_700.0) is False   # ran an hour
    assert slot.quick_deaths == 1 and slot.failing_since == 3_700.0
    # four more quick deaths right after: five in a row, but only seconds of failing
    assert _deaths(slot, EXIT_PIPELINE, [3_702, 3_704, 3_706, 3_708]) == [False] * 4


def test_one_start_up_error_among_kafka_failures_does_not_cut_the_minute_short():
    slot = _Slot(0)
    assert _deaths(slot, EXIT_PIPELINE, [0, 3, 6, 10]) == [False] * 4
    assert slot.record_death(2.0, EXIT_STARTUP, 12.0) is False
