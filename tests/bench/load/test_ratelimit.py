"""The intended-time schedule, with an injected clock: exact, no sleeping."""

import pytest

from bench.load.schedule import RateLimiter, Segment, profile_segments
from bench.spec.scenario import Bursts, Constant, Ramp, Step, Steps

NS = 1_000_000_000


class FakeClock:
    def __init__(self, t: int = 0):
        self.t = t
        self.slept: list[float] = []

    def __call__(self) -> int:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += int(round(s * NS))


def test_intended_times_are_exact_for_integer_rates():
    lim = RateLimiter(1000, start_ns=5 * NS, duration_ns=NS)
    assert lim.count == 1000
    assert [lim.intended_ns(i) for i in (0, 1, 999)] == [5 * NS, 5 * NS + 1_000_000, 5 * NS + 999_000_000]
    assert lim.intended_array(0, 3).tolist() == [5 * NS, 5 * NS + 1_000_000, 5 * NS + 2_000_000]


def test_take_hands_out_what_is_due_and_never_twice():
    clock = FakeClock(0)
    lim = RateLimiter(1000, start_ns=NS, duration_ns=NS, clock=clock, sleep=clock.sleep)
    assert lim.take() == (0, 0)                 # before the start: nothing due
    clock.t = NS                                # message 0 due exactly at start
    assert lim.take() == (0, 1)
    clock.t = NS + 10_500_000                   # 10.5 ms later: messages 1..10 due
    assert lim.take() == (1, 11)
    assert lim.take() == (11, 11)
    clock.t = 10 * NS                           # far behind: everything left, capped by max_n
    assert lim.take(max_n=100) == (11, 111)
    assert lim.take() == (111, 1000)
    assert lim.take() is None and lim.sent == 1000


def test_a_stall_does_not_move_the_schedule():
    """Open loop: after a 2 s stall the intended times are still start + i/tps."""
    clock = FakeClock(0)
    lim = RateLimiter(100, start_ns=0, duration_ns=10 * NS, clock=clock, sleep=clock.sleep)
    lim.take()
    clock.t = 2 * NS
    lo, hi = lim.take()
    assert (lo, hi) == (1, 201)
    assert lim.intended_ns(200) == 2 * NS


def test_wait_sleeps_exactly_until_the_next_due_time():
    clock = FakeClock(0)
    lim = RateLimiter(10, start_ns=0, duration_ns=NS, clock=clock, sleep=clock.sleep)
    assert lim.take() == (0, 1)
    lim.wait(max_s=1.0)
    assert clock.slept == [0.1] and clock.t == 100_000_000
    assert lim.take() == (1, 2)


def test_fractional_rates_are_consistent():
    lim = RateLimiter(3.5, start_ns=0, duration_ns=2 * NS)
    assert lim.count == 7                       # 0, 0.286, ..., 1.714 s
    times = [lim.intended_ns(i) for i in range(lim.count)]
    assert times == lim.intended_array(0, 7).tolist()
    assert all(t < 2 * NS for t in times)
    for t in times:
        assert lim._due_at(t) == times.index(t) + 1
        assert lim._due_at(t - 1) == times.index(t)


@pytest.mark.parametrize("rate,expected", [
    (Constant(tps=5), [Segment(0.0, 10.0, 5)]),
    (Steps(steps=[Step(tps=1, duration_s=4), Step(tps=2, duration_s=3)]),
     [Segment(0.0, 4, 1), Segment(4.0, 3, 2), Segment(7.0, 3.0, 1)]),
    (Bursts(base_tps=1, burst_tps=9, burst_s=2, every_s=5),
     [Segment(0.0, 2, 9), Segment(2.0, 3, 1), Segment(5.0, 2, 9), Segment(7.0, 3, 1)]),
])
def test_profiles_become_segments(rate, expected):
    assert profile_segments(rate, 10.0) == expected


def test_ramp_is_monotone_and_covers_the_duration():
    segs = profile_segments(Ramp(start_tps=100, end_tps=200), 4.0)
    assert abs(sum(s.duration_s for s in segs) - 4.0) < 1e-9
    rates = [s.tps for s in segs]
    assert rates == sorted(rates) and 100 < rates[0] < rates[-1] < 200


def test_wait_min_sleep_batches_high_rates():
    clock = FakeClock(0)
    lim = RateLimiter(100_000, start_ns=0, duration_ns=NS, clock=clock, sleep=clock.sleep)
    assert lim.take() == (0, 1)
    lim.wait(max_s=0.01, min_s=0.001)           # next due in 10 us, but sleep 1 ms
    assert clock.t == 1_000_000
    assert lim.take() == (1, 101)               # the 100 records due by then, in one go
