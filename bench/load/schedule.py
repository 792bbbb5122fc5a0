"""Open-loop send schedule: every record has an *intended* send time fixed in advance.

The seed's producer slept 1/tps after each send, so a stalled pipeline slowed the load down
with it and the stall never showed in the numbers (coordinated omission). Here message i of
a segment is due at start_ns + i / tps, whatever happened before; the producer sends what is
due and measures every latency from the intended time, so a stall shows as a queue.

    limiter = RateLimiter(tps=20_000, start_ns=t0, duration_ns=10**10)
    while (lo_hi := limiter.take()) is not None:   # None: the segment is over
        for i in range(*lo_hi): send(i, limiter.intended_ns(i))
        limiter.wait()                              # sleep until the next one is due

The clock and sleep are injectable, so the schedule has exact unit tests.
"""

import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from bench.spec.scenario import Bursts, Constant, Max, Ramp, Steps

__all__ = ["RateLimiter", "Segment", "profile_segments"]

NS = 1_000_000_000


class Segment(NamedTuple):
    """A constant-rate stretch of a plan, relative to the plan's start."""
    offset_s: float
    duration_s: float
    tps: float


class RateLimiter:
    """Intended send times for one constant-rate segment [start_ns, start_ns + duration_ns)."""

    __slots__ = ("tps", "start_ns", "end_ns", "count", "_next", "_clock", "_sleep", "_int")

    def __init__(self, tps: float, start_ns: int, duration_ns: int, *,
                 clock: Callable[[], int] = time.time_ns, sleep: Callable[[float], None] = time.sleep):
        if tps <= 0 or duration_ns < 0:
            raise ValueError(f"need tps > 0 and duration_ns >= 0, got {tps}, {duration_ns}")
        self.tps = tps
        self.start_ns = start_ns
        self.end_ns = start_ns + duration_ns
        # Integer rates use exact integer arithmetic; others float (sub-ns error).
        self._int = float(tps).is_integer()
        self.count = self._due_at(self.end_ns - 1) if duration_ns > 0 else 0
        self._next = 0
        self._clock = clock
        self._sleep = sleep

    def intended_ns(self, i: int) -> int:
        """Intended send time of message i of this segment."""
        if self._int:
            return self.start_ns + (i * NS) // int(self.tps)
        return self.start_ns + int(i * NS / self.tps)

    def intended_array(self, lo: int, hi: int) -> np.ndarray:
        """Intended send times of messages [lo, hi) as int64 (same values as intended_ns)."""
        i = np.arange(lo, hi, dtype=np.int64)
        if self._int:
            return self.start_ns + (i * NS) // int(self.tps)
        return self.start_ns + (i * NS / self.tps).astype(np.int64)

    def _due_at(self, now_ns: int) -> int:
        """How many messages are due at now_ns (intended time <= now_ns)."""
        if now_ns < self.start_ns:
            return 0
        elapsed = now_ns - self.start_ns
        if self._int:
            n = (elapsed * int(self.tps)) // NS + 1
        else:
            n = int(elapsed * self.tps / NS) + 1
            # float rounding: step back/forward so that intended(n-1) <= now < intended(n)
            while n > 0 and self.intended_ns(n - 1) > now_ns:
                n -= 1
            while self.intended_ns(n) <= now_ns:
                n += 1
        return min(n, getattr(self, "count", n))

    @property
    def sent(self) -> int:
        """Messages handed out by take() so far."""
        return self._next

    def take(self, max_n: int | None = None) -> tuple[int, int] | None:
        """Indices [lo, hi) now due and not taken yet (maybe empty, at most max_n);
        None when all are taken."""
        if self._next >= self.count:
            return None
        lo = self._next
        hi = self._due_at(self._clock())
        if max_n is not None:
            hi = min(hi, lo + max_n)
        if hi > lo:
            self._next = hi
        return lo, max(lo, hi)

    def next_ns(self) -> int | None:
        """Intended time of the next message not taken yet (None: segment done)."""
        return None if self._next >= self.count else self.intended_ns(self._next)

    def wait(self, max_s: float = 0.05, min_s: float = 0.0) -> None:
        """Sleep until the next message is due, but at most max_s (to stay responsive) and,
        if anything is still to come, at least min_s."""
        nxt = self.next_ns()
        if nxt is None:
            return
        delay = (nxt - self._clock()) / NS
        if delay > 0 or min_s > 0:
            self._sleep(min(max(delay, min_s), max_s))


def profile_segments(rate, duration_s: float) -> list[Segment]:
    """The constant-rate segments of a rate profile over duration_s seconds.

    A ramp becomes 100 ms steps (at least 20 of them), each at the ramp's rate at its middle.
    `max` has no fixed plan (the runner searches): it raises ValueError.
    """
    if isinstance(rate, Constant):
        return [Segment(0.0, duration_s, rate.tps)]
    if isinstance(rate, Ramp):
        n = max(20, int(duration_s / 0.1))
        step = duration_s / n
        return [Segment(k * step, step, rate.start_tps + (rate.end_tps - rate.start_tps) * (k + 0.5) / n)
                for k in range(n)]
    if isinstance(rate, Steps):
        out, t, k = [], 0.0, 0
        while t < duration_s - 1e-9:
            s = rate.steps[k % len(rate.steps)]
            d = min(s.duration_s, duration_s - t)
            out.append(Segment(t, d, s.tps))
            t += d
            k += 1
        return out
    if isinstance(rate, Bursts):
        out, t = [], 0.0
        while t < duration_s - 1e-9:
            b = min(rate.burst_s, duration_s - t)
            out.append(Segment(t, b, rate.burst_tps))
            rest = min(rate.every_s - rate.burst_s, duration_s - t - b)
            if rest > 1e-9:
                out.append(Segment(t + b, rest, rate.base_tps))
            t += rate.every_s
        return out
    if isinstance(rate, Max):
        raise ValueError("rate profile `max` is a search, not a fixed plan")
    raise TypeError(f"unknown rate profile {type(rate).__name__}")
