"""The pure parts of `bench drain`: where the progress curve crosses a level."""

import pytest

from bench.drain.measure import _crossing


def test_crossing_interpolates_between_samples():
    points = [(0.0, 0), (1.0, 0), (2.0, 100), (3.0, 300)]
    assert _crossing(points, 50) == pytest.approx(1.5)
    assert _crossing(points, 200) == pytest.approx(2.5)
    assert _crossing(points, 300) == pytest.approx(3.0)


def test_crossing_of_a_flat_step_is_the_step_time():
    assert _crossing([(0.0, 0), (4.0, 10), (5.0, 10)], 10) == pytest.approx(4.0)


def test_a_drain_too_short_to_time_has_no_rate():
    from bench.drain.measure import _rate

    assert _rate(2_000, 1e-6) is None          # would print 2,000,000,000 tx/s
    assert _rate(1_000_000, 8.0) == 125_000
