"""core.faults: the test-only seam read from FRAUDSTREAM_FAULTS. Off unless set; a bad value
is one ConfigError naming the variable; a hit is an error the loop's txn rules call abortable."""

import random

import pytest
from confluent_kafka import KafkaException

from core.errors import ConfigError
from core.faults import ENV, Faults, faults_from_env
from core.txn import AbortRequired, raise_produce_error, txn_call


def test_unset_or_empty_means_no_faults():
    assert faults_from_env({}) is None
    assert faults_from_env({ENV: "  "}) is None


def test_points_and_rates_are_read():
    f = faults_from_env({ENV: "produce:0.01, commit:0.5"})
    assert f.rates == {"produce": 0.01, "commit": 0.5}


@pytest.mark.parametrize("value", ["produce", "produce:x", "produce:1.5", "consume:0.1", "commit:-0.1"])
def test_a_bad_value_names_the_variable(value):
    with pytest.raises(ConfigError, match=ENV):
        faults_from_env({ENV: value})


def test_a_hit_is_abortable_through_the_loops_own_error_rules():
    always = Faults({"produce": 1.0, "commit": 1.0})
    with pytest.raises(AbortRequired, match="injected commit fault"):
        txn_call("commit_transaction", always.hit, "commit")
    with pytest.raises(AbortRequired, match="injected produce fault"):
        try:
            always.hit("produce")
        except KafkaException as exc:
            raise_produce_error(exc)
    assert always.injected == {"produce": 1, "commit": 1}


def test_hits_come_at_the_asked_rate_and_never_at_a_point_not_asked():
    f = Faults({"commit": 0.2}, random.Random(5))
    hits = 0
    for _ in range(5000):
        f.hit("produce")                     # not configured: never raises
        try:
            f.hit("commit")
        except KafkaException:
            hits += 1
    assert 850 <= hits <= 1150 and f.injected == {"commit": hits}


def test_a_stall_holds_the_transaction_open_and_fails_nothing():
    import time

    from core.faults import STALL_S, faults_from_env

    faults = faults_from_env({"FRAUDSTREAM_FAULTS": "stall:1"})
    t0 = time.monotonic()
    faults.hit("stall")                 # no exception: nothing fails ...
    assert time.monotonic() - t0 >= STALL_S * 0.9   # ... the transaction is only held open
    assert faults.injected == {"stall": 1}
    faults.hit("produce")               # a point not asked for does nothing
