"""Per-second record of a run, fed by the producer and sink ticks, cut into windows afterwards.

Seconds are epoch seconds: latencies are filed under the second the record was *intended* to
be sent, visibility counts under the second it became visible, actual sends under the second
they happened. `judge()` decides whether a window held the SLO, counting records not visible
yet at their age when judged (a pipeline that stops emitting cannot pass by having nothing to
measure), and whether the window was *sustained*: the consumer lag at its end no larger than
at its start, within a bound (Timeline.lag_bound).
"""

import time

import msgspec
import numpy as np

from bench.measure import histogram
from bench.load.schedule import NS
from bench.report.result import Checks, Counts, Second, Stages, Window

__all__ = ["Timeline"]


STAGES = ("until_scored", "scored_to_visible")
# A producer sends a record a little after its intended time (publish delay, a few ms): a
# tick received this long after a second ended has counted all of that second's records.
_REPORT_SLACK_S = 0.05
_LAG_CAP_MS = 250.0   # see Timeline.lag_bound


class Timeline:
    """Sent counts, publish delay and end-to-end latency histograms (also split in STAGES),
    visible counts, per second."""

    def __init__(self):
        self.sent: dict[int, int] = {}
        self.sent_at: dict[int, int] = {}     # by the second records actually went out
        self.delay: dict[int, object] = {}
        self.latency: dict[int, object] = {}
        self.stages: dict[str, dict[int, object]] = {name: {} for name in STAGES}
        self.visible: dict[int, int] = {}
        self.scores_by_sink: dict[int, int] = {}
        self.alerts_by_sink: dict[int, int] = {}
        # wall time each producer / sink last reported (for settled_second)
        self._heard: dict[tuple[str, int], float] = {}

    # ---- feeding -------------------------------------------------------------------------
    def producer_tick(self, seconds: dict, index: int = 0, at: float | None = None,
                      sent_at: dict | None = None) -> None:
        for sec, (n, blob) in seconds.items():
            self.sent[sec] = self.sent.get(sec, 0) + n
            self._add(self.delay, sec, blob)
        for sec, n in (sent_at or {}).items():
            self.sent_at[sec] = self.sent_at.get(sec, 0) + n
        self._heard["producer", index] = time.time() if at is None else at

    def sink_tick(self, index: int, hists: dict, visible: dict, scores: int, alerts: int,
                  at: float | None = None) -> None:
        """hists: {second: (end-to-end blob, one blob per STAGES)}."""
        for sec, (e2e, *stages) in hists.items():
            self._add(self.latency, sec, e2e)
            for name, blob in zip(STAGES, stages):
                self._add(self.stages[name], sec, blob)
        for sec, n in visible.items():
            self.visible[sec] = self.visible.get(sec, 0) + n
        self.scores_by_sink[index] = scores
        self.alerts_by_sink[index] = alerts
        self._heard["sink", index] = time.time() if at is None else at

    @staticmethod
    def _add(table: dict, sec: int, blob) -> None:
        h = table.get(sec)
        if h is None:
            table[sec] = histogram.merge([blob])
        else:
            h.decode_and_add(blob)

    # ---- reading -------------------------------------------------------------------------
    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())

    @property
    def total_scores(self) -> int:
        return sum(self.scores_by_sink.values())

    @property
    def total_alerts(self) -> int:
        return sum(self.alerts_by_sink.values())

    def settled_second(self, now: float) -> int:
        """The latest whole second every producer and sink has reported all of.

        Each child reports every ~0.5 s, so the second that just ended is still partly
        unreported: read live, it shows too few sent and, set against scores counted by the
        sinks' later reports, a negative backlog."""
        last = int(now) - 1
        if not self._heard:
            return last
        return min(last, int(min(self._heard.values()) - _REPORT_SLACK_S) - 1)

    def backlog(self, through: int) -> int:
        """Records intended up to the end of second `through` and not visible by then."""
        sent = sum(n for s, n in self.sent.items() if s <= through)
        seen = sum(n for s, n in self.visible.items() if s <= through)
        return max(sent - seen, 0)

    def window(self, a: int, b: int) -> tuple[Counts, object]:
        """Counts for records intended in epoch seconds [a, b), and the merged end-to-end
        histogram they came from (judge() adds the rest a Window holds).

        sent_tps counts what went out in [a, b) by the clock (by intended second, it would
        equal the asked rate by construction); achieved_tps the window's own records that
        are visible, so a backlog of earlier seconds caught up in the window does not count."""
        secs = range(a, b)
        e2e = histogram.merge(self.latency[s] for s in secs if s in self.latency)
        delay = histogram.merge(self.delay[s] for s in secs if s in self.delay)
        sent = sum(self.sent.get(s, 0) for s in secs)
        out = sum(self.sent_at.get(s, 0) for s in secs) if self.sent_at else sent
        dur = max(b - a, 1)
        measured = e2e.get_total_count()
        counts = Counts(seconds=b - a, sent=sent, measured=measured, sent_tps=out / dur,
                        achieved_tps=measured / dur, e2e=histogram.summary(e2e),
                        publish_delay=histogram.summary(delay))
        return counts, e2e

    def stage_summaries(self, a: int, b: int) -> Stages:
        """End to end's two STAGES over records intended in [a, b), summarised."""
        secs = range(a, b)
        return Stages(**{name: histogram.summary(histogram.merge(table[s] for s in secs if s in table))
                         for name, table in self.stages.items()})

    def unseen_ages_us(self, a: int, b: int, asked_tps: float, now_ns: int) -> np.ndarray:
        """The age at `now_ns` (µs) of every record scheduled in [a, b) and not visible.

        Two kinds, each at now - its intended time, never less than it is:
        - sent and not seen: per second, sent - seen records, taken as that second's latest
          (a partition is read in order), evenly spaced over the second;
        - not sent at all: the schedule's floor(asked x (b - a)) records less those sent. The
          generator sends in intended order, so they are the window's latest: record k of
          the schedule is due at a + k / asked.
        Counted per second, the schedule would invent records: a generator whose seconds
        start off the window's (it ran before it) sends 18,674 in one second and 18,676 in
        the next at 18,675/s, and the first looked like one record unseen for the whole
        window (15 such in a 60 s confirmation, the oldest 57 s old)."""
        ages = []
        total_sent = 0
        for s in range(a, b):
            h = self.latency.get(s)
            seen = 0 if h is None else h.get_total_count()
            sent = self.sent.get(s, 0)
            total_sent += sent
            missing = sent - seen
            if missing > 0:
                intended = s * NS + (np.arange(sent - missing, sent) * NS) // sent
                ages.append(np.maximum((now_ns - intended) // 1000, 1))
        unsent = int(asked_tps * (b - a)) - total_sent
        if unsent > 0:
            k = np.arange(total_sent, total_sent + unsent, dtype=np.float64)
            intended = a * NS + (k * (NS / asked_tps)).astype(np.int64)
            ages.append(np.maximum((now_ns - intended) // 1000, 1))
        return np.concatenate(ages) if ages else np.zeros(0, np.int64)

    def lag_bound(self, asked_tps: float, slo) -> int:
        """How much the consumer lag may grow over a window and still count as sustained:
        the records in flight at the asked rate over the SLO's p99, at most 250 ms of them.

        Why that much: a pipeline holding the SLO has about asked x (its latency) records in
        flight at any second boundary, so the lag sampled at two boundaries differs by
        asked x (the change in latency between them), which the p99 bounds. Why no more: a
        pipeline behind by a share d of the rate grows the lag by d x asked x seconds, over
        the bound once d > bound / window; 50 ms over a 6 s step is 0.8 %, and the 250 ms cap
        keeps throughput SLOs of seconds at 5 % of a 5 s step and 0.4 % of a 60 s
        confirmation (the old rule let 5 % slip in any window)."""
        return int(asked_tps * min(slo.p99_ms, _LAG_CAP_MS) / 1000)

    def judge(self, a: int, b: int, asked_tps: float, slo, now_ns: int) -> Window:
        """window(a, b), its latency spectrum and stages, plus the SLO verdict.

        The schedule, not the generator, says how many records belong to the window: records
        the generator has not even sent yet, or that are not visible yet, count at their age
        now (unseen_ages_us). Sustained: the consumer lag (records intended and not visible)
        at the window's end exceeds that at the end of its first second by no more than
        lag_bound().
        """
        w, hist = self.window(a, b)
        ages = self.unseen_ages_us(a, b, asked_tps, now_ns)
        unseen = len(ages)
        planned = w.measured + unseen
        if unseen:
            h = histogram.merge([hist])
            histogram.record_array(h, ages)
            judged = histogram.summary(h)
        else:
            judged = w.e2e
        # the start: once the window's first second has run. A window that starts on a
        # drained pipeline has nothing in flight at its very first instant; the asked x latency
        # records a steady pipeline keeps in flight are not a backlog that grew.
        lag_start, lag_end = self.backlog(min(a, b - 1)), self.backlog(b - 1)
        checks = Checks(
            p99=judged.p99_ms is not None and judged.p99_ms <= slo.p99_ms,
            p999=judged.p999_ms is not None and judged.p999_ms <= slo.p999_ms,
            # enough of the scheduled records showed up (the others are in `judged` at their age) ...
            rate=w.measured >= slo.min_rate_ratio * planned,
            # ... and the output kept pace during the window: the backlog did not grow
            throughput=lag_end - lag_start <= self.lag_bound(asked_tps, slo),
        )
        return Window(**msgspec.structs.asdict(w), e2e_stages=self.stage_summaries(a, b),
                      e2e_spectrum=histogram.spectrum(hist), asked_tps=asked_tps, planned=planned,
                      unseen=unseen, judged_e2e=judged, checks=checks,
                      passed=checks.p99 and checks.p999 and checks.rate and checks.throughput,
                      lag_start=lag_start, lag_end=lag_end)

    def per_second(self, a: int, b: int) -> list[Second]:
        """One row per second in [a, b): sent, visible, e2e percentiles (ms) by intended second."""
        rows = []
        for s in range(a, b):
            h = self.latency.get(s)
            summ = histogram.summary(h if h is not None else histogram.new_histogram())
            rows.append(Second(t=s - a, sent=self.sent.get(s, 0), visible=self.visible.get(s, 0),
                               p50_ms=summ.p50_ms, p99_ms=summ.p99_ms, p999_ms=summ.p999_ms,
                               max_ms=summ.max_ms))
        return rows
