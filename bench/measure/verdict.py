"""The exactly-once verdict of a run, and detection quality, from what the sinks read.

Every record the load generator sent carries a sequence number (bench.load.header); the sinks
hand back every sequence number they read from fraud-scores and fraud-alerts. Exactly once
means: each sent number appears once in fraud-scores, nothing else does, and the alerts are
exactly the scores that said is_fraud, once each.

Detection is judged against the generator's labels, overall and per fraud pattern (the load
generator knows the pattern of every fraud it sent). Recall per pattern is its share of that
pattern's fraud flagged; precision per pattern is tp / (tp + every flagged legit): the
precision alerts would have if this pattern were the only fraud in the same legit traffic
(a flagged legit record belongs to no pattern, so this is the one per-pattern precision that
does not depend on the other patterns' volumes).
"""

import numpy as np

from bench.load.header import SEQ_BITS
from bench.report.result import Detection, PatternDetection, Verdict

__all__ = ["verdict", "detection"]


def _counts(seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.unique(seqs, return_counts=True)


def verdict(sent: dict[int, int], score_seqs: np.ndarray, flagged: np.ndarray,
            alert_seqs: np.ndarray, positives: np.ndarray, no_header: int = 0,
            foreign: int = 0, positive_patterns: np.ndarray | None = None) -> Verdict:
    """Exactly-once verdict and detection quality.

    sent: producer index -> records sent (sequence numbers index << SEQ_BITS | 0..n-1).
    score_seqs/flagged: every record read from fraud-scores and whether it said is_fraud.
    alert_seqs: every record read from fraud-alerts. positives: seqs sent with label 1;
    positive_patterns: the bench.load.synth pattern code of each (None: no per-pattern figures).
    """
    expected = sum(sent.values())
    producer = score_seqs >> SEQ_BITS
    local = score_seqs & ((1 << SEQ_BITS) - 1)
    limit = np.array([sent.get(int(p), 0) for p in range(max(sent, default=-1) + 2)], np.int64)
    known = (producer >= 0) & (producer < len(limit) - 1)
    known[known] &= local[known] < limit[producer[known]]
    values, counts = _counts(score_seqs[known])
    duplicated = int((counts - 1).sum())
    seen = len(values)
    unexpected = int((~known).sum()) + no_header + foreign
    missing = expected - seen

    a_values, a_counts = _counts(alert_seqs)
    flagged_set = np.unique(score_seqs[flagged]) if len(flagged) else np.zeros(0, np.int64)
    alert_dups = int((a_counts - 1).sum())
    alerts_not_flagged = int(np.setdiff1d(a_values, flagged_set).size)
    flagged_without_alert = int(np.setdiff1d(flagged_set, a_values).size)

    exactly_once = (missing == 0 and duplicated == 0 and unexpected == 0 and alert_dups == 0
                    and alerts_not_flagged == 0 and flagged_without_alert == 0)
    return Verdict(
        exactly_once=exactly_once,
        sent=expected, scored_unique=seen, scored_records=int(len(score_seqs)),
        missing=missing, duplicated=duplicated, unexpected=unexpected,
        alerts=int(len(alert_seqs)), alert_duplicates=alert_dups,
        alerts_not_flagged=alerts_not_flagged, flagged_without_alert=flagged_without_alert,
        detection=detection(flagged_set, positives, positive_patterns),
    )


def detection(flagged_set: np.ndarray, positives: np.ndarray,
              positive_patterns: np.ndarray | None = None) -> Detection:
    """Precision and recall of the flagged sequence numbers (unique) against the positives,
    and per pattern (by_pattern) when the positives' pattern codes are given."""
    from bench.load.synth import PATTERN_NAMES

    hit = np.isin(positives, flagged_set)
    tp = int(np.unique(positives[hit]).size)
    false_pos = int(len(flagged_set)) - tp
    by = None
    if positive_patterns is not None:
        by = {}
        for code in np.unique(positive_patterns).tolist():
            mine = positive_patterns == code
            p_tp = int(hit[mine].sum())
            by[PATTERN_NAMES[code]] = PatternDetection(
                positives_sent=int(mine.sum()), true_positives=p_tp,
                recall=p_tp / int(mine.sum()),
                precision=p_tp / (p_tp + false_pos) if p_tp + false_pos else None)
    return Detection(positives_sent=int(len(positives)), flagged=int(len(flagged_set)),
                     true_positives=tp,
                     precision=tp / len(flagged_set) if len(flagged_set) else None,
                     recall=tp / len(positives) if len(positives) else None,
                     false_positives=false_pos if by is not None else None, by_pattern=by)
