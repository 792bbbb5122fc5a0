"""The per-message design the project replaces (the seed tutorial's consumer), rewritten as a
baseline: json.loads, one feature row, the training library's predict_proba on that one row,
json.dumps. Same model and same features as core.Scorer, so ratios compare designs only."""

import json
import time
from datetime import datetime, timezone

import numpy as np

from core.features import N_V, build_features
from core.model import load_meta
from core.risk import LEVEL_NAMES, RiskBands

__all__ = ["SeedPath"]

_V = tuple(f"V{i}" for i in range(1, N_V + 1))


class SeedPath:
    """score(raw) -> fraud-scores value, one message at a time."""

    def __init__(self, meta_path=None):
        import xgboost

        from core.paths import stateless_model_path

        # the per-message design sees each message alone: the stateless model, as the scorer
        # fixture uses (tests/perf/conftest.py)
        meta, model_file = load_meta(meta_path if meta_path is not None else stateless_model_path())
        self.classifier = xgboost.XGBClassifier(n_jobs=1)
        self.classifier.load_model(model_file)
        self.risk = RiskBands.from_meta(meta)
        self.threshold = meta.threshold
        self.model_version = meta.model_version

    def score(self, raw: bytes) -> bytes:
        started = time.perf_counter()
        tx = json.loads(raw)
        when = datetime.fromisoformat(tx["timestamp"].replace("Z", "+00:00"))
        row = build_features(np.array([tx["amount"]]), np.array([when.hour]),
                             np.array([[tx.get(name, 0.0) for name in _V]]))
        score = float(self.classifier.predict_proba(row)[0, 1])
        enriched = {
            **tx,
            "fraud_score": score,
            "is_fraud": score >= self.threshold,
            "risk_level": LEVEL_NAMES[self.risk.level_of(score)],
            "threshold": self.threshold,
            "scored_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "scoring_latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "model_version": self.model_version,
        }
        return json.dumps(enriched).encode()
