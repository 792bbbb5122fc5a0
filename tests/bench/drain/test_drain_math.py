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


def test_a_dead_letter_fails_the_drain_verdict():
    from bench.drain.result import DrainVerdict

    clean = dict(scored=1000, missing=0, duplicated=0, unexpected=0, alerts=3, alerts_mismatched=0)
    assert DrainVerdict(**clean, dead_letters=0).exactly_once
    # the input is all valid: a record dead-lettered was not scored, whatever else holds
    assert not DrainVerdict(**clean, dead_letters=1).exactly_once


def test_the_default_input_spans_enough_polls_at_the_rates_measured():
    """1.5M records: the 10-90 % window is 1.2M records, 40 polls of 0.1 s (a 5 % error at
    most) up to 300,000 tx/s; the fastest drain measured is ~190,000 (docs/performance.md)."""
    from bench.drain.measure import DrainOptions
    from bench.drain.result import STEADY_POLLS

    records = DrainOptions(bootstrap="", namespace="").records
    assert 0.8 * records / 300_000 / 0.1 >= STEADY_POLLS


def test_drain_settings_say_how_state_ran_and_older_results_still_read():
    import msgspec

    from bench.drain.cli import _state_words
    from bench.drain.result import DrainSettings

    old = msgspec.json.decode(b'{"batch_max_records": null, "batch_max_wait_ms": null, "kafka": {}}',
                              type=DrainSettings)
    assert old.state is True and old.snapshot_interval_s is None
    assert _state_words(old) == "per-card state"
    every = msgspec.structs.replace(old, snapshot_interval_s=0.0)
    assert _state_words(every) == "per-card state, a card-state snapshot in every transaction"
    assert _state_words(msgspec.structs.replace(old, snapshot_interval_s=2.5)).endswith("every 2.5 s")
    assert _state_words(msgspec.structs.replace(old, state=False)) == "no per-card state"
