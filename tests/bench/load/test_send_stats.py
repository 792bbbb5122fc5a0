"""What a producer tick reports: sends by intended second with each record's own publish
delay, and by the second they actually went out (a generator falling behind shows there)."""

import numpy as np

from bench.load.generator import _Stats
from bench.load.schedule import NS, profile_segments
from bench.measure import histogram
from bench.run.phases import warmup_tps
from bench.spec.scenario import Bursts, Constant, Ramp

S = 1_800_000_000


def test_each_record_keeps_its_own_delay_and_its_send_second():
    stats = _Stats()
    intended = S * NS + np.arange(4, dtype=np.int64) * (NS // 4)     # S, S.25, S.5, S.75
    # a stall: the first two on time, the last two 1.2 s late (a chunk interpolated
    # across would have smeared the stall over all four)
    actual = intended + np.array([1_000, 2_000, 1_200_000_000, 1_200_000_000])
    stats.add(intended, actual)
    by_intended, by_sent = stats.flush()
    n, blob = by_intended[S]
    h = histogram.merge([blob])
    assert n == 4 and h.get_total_count() == 4
    assert h.get_value_at_percentile(50) <= 2 and h.get_max_value() >= 1_199_000
    assert by_sent == {S: 2, S + 1: 2}
    assert stats.flush() == ({}, {})


def test_a_burst_profile_warms_up_at_its_base_rate_not_the_burst():
    burst = Bursts(base_tps=5000, burst_tps=30000, burst_s=3, every_s=10)
    segs = profile_segments(burst, 40)
    assert segs[0].tps == 30000
    assert warmup_tps(burst, segs) == 5000
    assert warmup_tps(Constant(tps=700), profile_segments(Constant(tps=700), 5)) == 700
    ramp = Ramp(start_tps=100, end_tps=1000)
    assert warmup_tps(ramp, profile_segments(ramp, 10)) < 150
