"""The decision threshold and the risk bands, applied to model scores.

Boundary semantics (one rule everywhere):
    is_fraud    score >= threshold
    level       the highest band whose lower edge <= score; band edges are inclusive on the
                lower side: LOW [0, medium), MEDIUM [medium, high), HIGH [high, critical),
                CRITICAL [critical, 1]
The HIGH edge is the threshold, so every fraud is HIGH or CRITICAL and every non-fraud is LOW
or MEDIUM. A NaN score is LOW and not fraud (the decoder rejects non-finite inputs, so a NaN
score would be a bug upstream, and alerting on it would hide that bug among real alerts).
"""

from __future__ import annotations

import msgspec
import numpy as np

__all__ = ["LEVEL_NAMES", "LOW", "MEDIUM", "HIGH", "CRITICAL", "Bands", "RiskBands"]

LEVEL_NAMES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
LOW, MEDIUM, HIGH, CRITICAL = range(4)


class Bands(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Lower edges (inclusive) of the MEDIUM, HIGH and CRITICAL bands; HIGH == threshold."""

    medium: float
    high: float
    critical: float


class RiskBands:
    """Threshold and band edges, with a vectorized classify()."""

    __slots__ = ("threshold", "bands", "_edges")

    def __init__(self, threshold: float, bands: Bands):
        edges = (bands.medium, bands.high, bands.critical)
        if not all(0.0 <= e <= 1.0 for e in edges) or not edges[0] <= edges[1] <= edges[2]:
            raise ValueError(f"band edges must satisfy 0 <= medium <= high <= critical <= 1, "
                             f"got {bands}")
        if bands.high != threshold:
            raise ValueError(f"the HIGH band must start at the threshold {threshold}, "
                             f"got {bands.high}")
        self.threshold = float(threshold)
        self.bands = bands
        # float32 edges: scores are float32, and comparing in float32 keeps "score >= edge"
        # exact for a score equal to the edge as written in the metadata.
        self._edges = np.array(edges, dtype=np.float32)

    @classmethod
    def from_meta(cls, meta) -> "RiskBands":
        """From a core.model.ModelMeta (anything with .threshold and .bands)."""
        return cls(meta.threshold, meta.bands)

    def classify(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(is_fraud bool (n,), level uint8 (n,) index into LEVEL_NAMES) for float scores."""
        scores = np.asarray(scores, dtype=np.float32)
        level = np.searchsorted(self._edges, scores, side="right").astype(np.uint8)
        level[np.isnan(scores)] = LOW
        return level >= HIGH, level

    def level_of(self, score: float) -> int:
        """The level (index into LEVEL_NAMES) of one score."""
        s = np.float32(score)
        e = self._edges
        if s >= e[2]:
            return CRITICAL
        if s >= e[1]:
            return HIGH
        if s >= e[0]:
            return MEDIUM
        return LOW

    def is_fraud(self, score: float) -> bool:
        """score >= threshold, compared like classify() does."""
        return bool(np.float32(score) >= self._edges[1])

    def __repr__(self) -> str:
        b = self.bands
        return (f"RiskBands(threshold={self.threshold!r}, medium={b.medium!r}, "
                f"critical={b.critical!r})")
