"""How long the load generator sleeps at least between sends, by rate."""

from hypothesis import given, strategies as st

from bench.load.generator import min_sleep_s


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


class _FakeTime:
    """A clock that moves only when the generator sleeps or spends time sending."""

    def __init__(self, start_ns: int):
        self.now = start_ns

    def clock(self) -> int:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += int(seconds * 1e9)


def _drive(tps, seconds, per_record_ns, start_late_ns=0):
    from bench.load.generator import send_due
    from bench.load.schedule import RateLimiter

    t = _FakeTime(1_000_000_000 + start_late_ns)
    limiter = RateLimiter(tps, 1_000_000_000, int(seconds * 1e9), clock=t.clock, sleep=t.sleep)
    chunks = []

    def send(lo, hi):
        chunks.append((lo, hi))
        t.now += (hi - lo) * per_record_ns

    while send_due(limiter, send, min_sleep_s(tps)):
        pass
    return chunks


def test_one_chunk_per_wakeup_even_when_sending_takes_time():
    # 50,000 tx/s for 1 s, 5 us per record: records come due while each chunk goes out
    chunks = _drive(50_000, 1.0, per_record_ns=5_000)
    assert [lo for lo, _ in chunks] == [0] + [hi for _, hi in chunks[:-1]]   # in order, no gaps
    assert chunks[-1][1] == 50_000
    # one chunk per 5 ms wake-up (~200), not a cascade of shrinking ones after each
    assert len(chunks) <= 1.0 / min_sleep_s(50_000) + 5
    assert min(hi - lo for lo, hi in chunks[1:-1]) >= 200


def test_a_backlog_goes_out_in_full_chunks_without_sleeping():
    from bench.load.generator import _CHUNK
    # the generator starts 1 s late: 20,000 records are due at once
    chunks = _drive(20_000, 2.0, per_record_ns=100, start_late_ns=1_000_000_000)
    full = [c for c in chunks if c[1] - c[0] == _CHUNK]
    assert len(full) >= 20_000 // _CHUNK
    assert chunks[0] == (0, _CHUNK) and chunks[1] == (_CHUNK, 2 * _CHUNK)
    assert chunks[-1][1] == 40_000
