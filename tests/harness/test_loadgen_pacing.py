"""How long the load generator sleeps at least between sends, by rate."""

from hypothesis import given, strategies as st

from bench.loadgen import min_sleep_s


def test_low_rates_wake_every_millisecond():
    # peak.yaml searches 1-10k tx/s: its publish delay must not grow
    assert min_sleep_s(1) == min_sleep_s(1_000) == min_sleep_s(10_000) == 0.001


def test_high_rates_gather_records_between_wakeups():
    assert min_sleep_s(20_000) == 0.002
    assert min_sleep_s(50_000) == min_sleep_s(10_000_000) == 0.005


@given(st.floats(1, 1e7), st.floats(1, 1e7))
def test_never_shorter_at_a_higher_rate(a, b):
    lo, hi = sorted((a, b))
    assert 0.001 <= min_sleep_s(lo) <= min_sleep_s(hi) <= 0.005
