"""Train the fraud model from bench.load.synth data, reproducibly (same seed -> same bytes).

Data: three independent generator runs (seed, seed+1, seed+2). Training data is enriched in
fraud (1 % instead of the 0.2 % the stream has) so training stays well under a minute on one
thread; validation and holdout have the stream's realistic 0.2 %, so the threshold, the bands
and the reported precision/recall are what production traffic would see. The scores are
therefore a ranking, not probabilities calibrated to 0.2 %.

Features come from core.features.build_features (the serving code), hour of day UTC from the
timestamp exactly as the decoder computes it.

Decision rule: the threshold maximises F1 on the validation precision/recall curve. Bands
(lower edges, inclusive): HIGH starts at the threshold; CRITICAL at the lowest score above it
whose validation precision reaches CRITICAL_PRECISION (auto-block only when nearly sure);
MEDIUM at the score above which the riskiest REVIEW_SHARE of validation traffic falls (the
review queue), capped at the threshold.

Shape: 100 trees of depth 3 with min_child_weight 30. Predict cost is branch
mispredictions: the V features are noisy N(0, 1), so most splits are coin flips for the CPU
(the same row repeated 1024 times scored 3.5x faster than 1024 different rows). Cost therefore
follows the number of split nodes a row passes, and the sweep in models/README.md showed that
min_child_weight 30 (no split without enough hessian mass, i.e. none on the few confident
legit rows) gives better PR-AUC with far fewer nodes: this model beats the earlier 250 trees of
depth 5 on validation PR-AUC at ~1/6 of the predict time.

XGBoost rather than LightGBM or sklearn's HistGradientBoosting: compiled with tl2cgen it was
the fastest per row on this machine (1.39 us/row at batch 1024 vs 3.2 and 4.3 us,
/work/shared/notes/measured-here.md), and with nthread=1 its training is bit-reproducible.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import msgspec
import numpy as np

from bench.load import synth
from core.features import FEATURE_NAMES
from core.model import Metrics, ModelMeta
from core.risk import Bands

__all__ = ["TrainConfig", "TrainResult", "train", "write_artifacts", "check_artifacts",
           "MODEL_FILE", "META_FILE", "CRITICAL_PRECISION", "REVIEW_SHARE"]

MODEL_FILE = "fraud-model.json"
META_FILE = "fraud-model.meta.json"
CRITICAL_PRECISION = 0.90
REVIEW_SHARE = 0.01
THRESHOLD_RULE = (f"threshold = argmax F1 on the validation precision/recall curve; "
                  f"CRITICAL from the lowest score >= threshold with validation precision >= "
                  f"{CRITICAL_PRECISION}; MEDIUM from the top {REVIEW_SHARE:.0%} of validation "
                  f"scores (capped at the threshold); edges inclusive on the lower side")


@dataclass(frozen=True)
class TrainConfig:
    """Everything training depends on; recorded in the metadata."""

    seed: int = 20261128
    n_train: int = 300_000
    train_fraud_rate: float = 0.01
    n_validation: int = 500_000
    n_holdout: int = 500_000
    fraud_rate: float = 0.002
    xgboost: dict = field(default_factory=lambda: {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "max_depth": 3,
        "eta": 0.1,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 30,  # the shape: see the module docstring
        "max_bin": 128,
        "nthread": 1,          # one thread: bit-identical retraining
    })
    n_trees: int = 100


@dataclass(frozen=True)
class TrainResult:
    model_json: bytes
    meta: ModelMeta
    seconds: dict[str, float]   # wall time per stage (not part of the metadata)


def train(cfg: TrainConfig = TrainConfig(), *, progress=None) -> TrainResult:
    """Generate the data, train, pick the threshold and bands, measure. Pure: writes nothing."""
    import xgboost as xgb

    say = progress or (lambda msg: None)
    seconds = {}
    t0 = time.perf_counter()
    say("generating data")
    train_b = synth.generate(cfg.n_train, seed=cfg.seed, fraud_rate=cfg.train_fraud_rate)
    valid_b = synth.generate(cfg.n_validation, seed=cfg.seed + 1, fraud_rate=cfg.fraud_rate)
    hold_b = synth.generate(cfg.n_holdout, seed=cfg.seed + 2, fraud_rate=cfg.fraud_rate)
    seconds["generate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    say(f"training {cfg.n_trees} trees on {cfg.n_train:,} rows")
    params = dict(cfg.xgboost, seed=cfg.seed)
    dtrain = xgb.DMatrix(train_b.features(), label=train_b.label)
    booster = xgb.train(params, dtrain, num_boost_round=cfg.n_trees)
    model_json = bytes(booster.save_raw("json"))
    seconds["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    say("choosing the threshold and bands on validation data")
    v_scores = _predict(booster, valid_b)
    threshold, bands = choose_threshold(valid_b.label, v_scores)
    h_scores = _predict(booster, hold_b)
    metrics = {
        "validation": evaluate(valid_b.label, v_scores, threshold),
        "holdout": evaluate(hold_b.label, h_scores, threshold),
    }
    seconds["evaluate"] = time.perf_counter() - t0

    sha = hashlib.sha256(model_json).hexdigest()
    meta = ModelMeta(
        model_version=f"xgb-{sha[:12]}",
        model_file=MODEL_FILE,
        model_sha256=sha,
        feature_names=FEATURE_NAMES,
        threshold=threshold,
        threshold_rule=THRESHOLD_RULE,
        bands=bands,
        metrics=metrics,
        training=_training_record(cfg, xgb.__version__),
    )
    return TrainResult(model_json, meta, seconds)


def _predict(booster, batch) -> np.ndarray:
    import xgboost as xgb

    d = xgb.DMatrix(batch.features())
    return booster.predict(d).astype(np.float32)


def choose_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, Bands]:
    """The threshold and band edges (see the module docstring), all exact float32 values."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(labels, scores)
    precision, recall = precision[:-1], recall[:-1]      # the last point has no threshold
    f1 = np.where(precision + recall > 0,
                  2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    best = int(np.argmax(f1))
    threshold = float(np.float32(thresholds[best]))
    sure = np.flatnonzero((thresholds >= threshold) & (precision >= CRITICAL_PRECISION))
    critical = float(np.float32(thresholds[sure[0]])) if len(sure) else 1.0
    top = float(np.quantile(scores.astype(np.float64), 1.0 - REVIEW_SHARE, method="higher"))
    medium = min(float(np.float32(top)), threshold)
    return threshold, Bands(medium=medium, high=threshold, critical=critical)


def evaluate(labels: np.ndarray, scores: np.ndarray, threshold: float) -> Metrics:
    """ROC-AUC, PR-AUC (average precision) and precision/recall/F1 at score >= threshold."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    flagged = scores >= np.float32(threshold)
    tp = int((flagged & (labels == 1)).sum())
    precision = tp / max(int(flagged.sum()), 1)
    recall = tp / max(int(labels.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Metrics(
        rows=int(len(labels)), frauds=int(labels.sum()),
        roc_auc=round(float(roc_auc_score(labels, scores)), 6),
        pr_auc=round(float(average_precision_score(labels, scores)), 6),
        precision=round(precision, 6), recall=round(recall, 6), f1=round(f1, 6),
    )


def _training_record(cfg: TrainConfig, xgb_version: str) -> dict:
    rec = asdict(cfg)
    rec["generator"] = {
        "module": "bench.load.synth", "mix": dict(synth.DEFAULT_MIX),
        "train_seed": cfg.seed, "validation_seed": cfg.seed + 1, "holdout_seed": cfg.seed + 2,
    }
    rec["xgboost_version"] = xgb_version
    return rec


def encode_meta(meta: ModelMeta) -> bytes:
    return msgspec.json.format(msgspec.json.encode(meta), indent=2) + b"\n"


def write_artifacts(result: TrainResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write the model JSON and its metadata into out_dir; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path, meta_path = out / MODEL_FILE, out / META_FILE
    model_path.write_bytes(result.model_json)
    meta_path.write_bytes(encode_meta(result.meta))
    return model_path, meta_path


def check_artifacts(result: TrainResult, out_dir: str | Path) -> list[str]:
    """Differences between a fresh training result and the artifacts in out_dir ([] = same)."""
    out = Path(out_dir)
    problems = []
    try:
        committed = (out / META_FILE).read_bytes()
    except OSError as exc:
        return [f"cannot read {out / META_FILE}: {exc.strerror or exc}"]
    fresh = encode_meta(result.meta)
    if committed != fresh:
        old = msgspec.json.decode(committed)
        new = msgspec.json.decode(fresh)
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                problems.append(f"metadata field {key!r}: committed {old.get(key)!r}, "
                                f"training gives {new.get(key)!r}")
    try:
        model_bytes = (out / MODEL_FILE).read_bytes()
    except OSError as exc:
        problems.append(f"cannot read {out / MODEL_FILE}: {exc.strerror or exc}")
    else:
        if model_bytes != result.model_json:
            problems.append(f"{out / MODEL_FILE} differs from the model training produces")
    return problems
