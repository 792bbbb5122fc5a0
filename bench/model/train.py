"""Train the fraud model from bench.load.synth data, reproducibly (same seed -> same bytes).

Data: three independent generator runs (seed, seed+1, seed+2), each two streams of cards:
a uniform population and, for SKEWED_SHARE of the rows, a Zipf-skewed one (card_skew 1.1, as
scenarios/card-testing.yaml has: hot cards with hundreds of payments a day must not look like
velocity attacks). Training data is enriched in fraud (1 % instead of the 0.2 % the stream
has) so training stays short on one thread, and in card-level fraud (TRAIN_MIX: card testing
and velocity attacks 25 % each instead of 15 %: a burst's early payments, where behaviour
starts to show, are few rows per attack, and with the default mix the trees saw ~36 bursts);
validation and holdout have the stream's realistic 0.2 % and its default mix, so the
threshold, the bands and the reported precision/recall are what production traffic would see. The scores are therefore a ranking, not probabilities
calibrated to 0.2 %.

Features come from core.features.build_features (the serving code), hour of day UTC from the
timestamp exactly as the decoder computes it. The stateful model (the default) adds the ten
per-card velocity features, computed by the scorer's own state (core.velocity, through
bench.model.velocity: each stream split into partitions by card key and read in time order);
`stateful=False` trains the 34-feature model that needs no state.

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
from core.velocity import VELOCITY_FEATURES
from core.model import Metrics, ModelMeta
from core.risk import Bands

__all__ = ["TrainConfig", "TrainResult", "train", "write_artifacts", "check_artifacts",
           "MODEL_FILE", "META_FILE", "CRITICAL_PRECISION", "REVIEW_SHARE", "Data", "make_data",
           "artifact_names", "STATEFUL_IS_DEFAULT"]

# The scorer loads fraud-model.* by default: the stateful model, since the scoring loop carries
# per-card state (on by default); the stateless one, for --no-state, sits next to it.
STATEFUL_IS_DEFAULT = True
MODEL_FILE = "fraud-model.json"
META_FILE = "fraud-model.meta.json"


def artifact_names(stateful: bool) -> tuple[str, str]:
    """(model file, metadata file) of the stateful or the stateless model."""
    if stateful == STATEFUL_IS_DEFAULT:
        return MODEL_FILE, META_FILE
    stem = "fraud-model-stateful" if stateful else "fraud-model-stateless"
    return f"{stem}.json", f"{stem}.meta.json"
# The stateful model's training fraud mix (validation and holdout: synth.DEFAULT_MIX). More
# card-level fraud than the stream has (2026-12-06, same validation and holdout, eta 0.1): holdout
# card-testing recall 0.845 -> 0.907, velocity 0.521 -> 0.592, PR-AUC 0.7005 -> 0.7037. The
# stateless model trains on DEFAULT_MIX: it cannot see card testing, so more bursts are only
# noise to it (holdout PR-AUC 0.5231 -> 0.5078 with TRAIN_MIX).
TRAIN_MIX = {"high_amount": 0.15, "micro": 0.10, "round_amount": 0.10,
             "card_testing_burst": 0.25, "velocity": 0.25, "account_takeover": 0.15}
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
    stateful: bool = True       # with the per-card velocity features (core.velocity)
    n_train: int = 600_000
    train_fraud_rate: float = 0.01
    train_mix: dict = field(default_factory=lambda: dict(TRAIN_MIX))   # stateful model only
    n_validation: int = 500_000
    n_holdout: int = 500_000
    fraud_rate: float = 0.002
    n_cards: int = 50_000       # per stream: ~7 payments per card a day in the uniform one
    skewed_share: float = 0.3   # share of rows from the Zipf-skewed card population
    card_skew: float = 1.1
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
    # the stateful model's own settings over `xgboost`: eta 0.2 had the best validation PR-AUC
    # of 0.1-0.3 on its 48 features (models/README.md); the stateless model keeps 0.1 (0.2
    # gained it 0.002 of validation PR-AUC and cost ~4 % of its predict speed)
    stateful_xgboost: dict = field(default_factory=lambda: {"eta": 0.2})


@dataclass(frozen=True)
class TrainResult:
    model_json: bytes
    meta: ModelMeta
    seconds: dict[str, float]   # wall time per stage (not part of the metadata)


@dataclass(frozen=True, eq=False)
class Data:
    """One data set: feature matrix, labels and pattern codes (bench.load.synth)."""

    x: np.ndarray
    label: np.ndarray
    pattern: np.ndarray


def make_data(cfg: "TrainConfig", n: int, seed: int, fraud_rate: float,
              mix: dict | None = None) -> Data:
    """n rows from the two card streams (disjoint cards), features as the scorer computes
    them: velocity per stream, through its own per-partition state. mix: the fraud patterns'
    weights (None: synth.DEFAULT_MIX)."""
    from bench.model.velocity import velocity_features

    n_skewed = int(round(n * cfg.skewed_share))
    streams = [synth.generate(n - n_skewed, seed=seed, fraud_rate=fraud_rate,
                              n_cards=cfg.n_cards, mix=mix),
               synth.generate(n_skewed, seed=seed + 1_000_003, fraud_rate=fraud_rate,
                              n_cards=cfg.n_cards, card_skew=cfg.card_skew,
                              card_offset=cfg.n_cards, id_offset=n - n_skewed, mix=mix)]
    xs = []
    for b in streams:
        x = b.features()
        xs.append(np.hstack([x, velocity_features(b)]) if cfg.stateful else x)
    return Data(np.vstack(xs), np.concatenate([b.label for b in streams]),
                np.concatenate([b.pattern for b in streams]))


def train(cfg: TrainConfig = TrainConfig(), *, progress=None) -> TrainResult:
    """Generate the data, train, pick the threshold and bands, measure. Pure: writes nothing."""
    import xgboost as xgb

    say = progress or (lambda msg: None)
    seconds = {}
    t0 = time.perf_counter()
    say("generating data" + (" and its velocity features" if cfg.stateful else ""))
    train_d = make_data(cfg, cfg.n_train, cfg.seed, cfg.train_fraud_rate, _train_mix(cfg))
    valid_d = make_data(cfg, cfg.n_validation, cfg.seed + 1, cfg.fraud_rate)
    hold_d = make_data(cfg, cfg.n_holdout, cfg.seed + 2, cfg.fraud_rate)
    seconds["generate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    say(f"training {cfg.n_trees} trees on {cfg.n_train:,} rows")
    params = dict(cfg.xgboost, **(cfg.stateful_xgboost if cfg.stateful else {}), seed=cfg.seed)
    dtrain = xgb.DMatrix(train_d.x, label=train_d.label)
    booster = xgb.train(params, dtrain, num_boost_round=cfg.n_trees)
    model_json = bytes(booster.save_raw("json"))
    seconds["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    say("choosing the threshold and bands on validation data")
    v_scores = _predict(booster, valid_d)
    threshold, bands = choose_threshold(valid_d.label, v_scores)
    h_scores = _predict(booster, hold_d)
    metrics = {
        "validation": evaluate(valid_d.label, v_scores, threshold),
        "holdout": evaluate(hold_d.label, h_scores, threshold),
    }
    metrics.update(evaluate_patterns(hold_d, h_scores, threshold, "holdout"))
    seconds["evaluate"] = time.perf_counter() - t0

    sha = hashlib.sha256(model_json).hexdigest()
    meta = ModelMeta(
        model_version=f"xgb-{sha[:12]}",
        model_file=artifact_names(cfg.stateful)[0],
        model_sha256=sha,
        feature_names=FEATURE_NAMES + (VELOCITY_FEATURES if cfg.stateful else ()),
        threshold=threshold,
        threshold_rule=THRESHOLD_RULE,
        bands=bands,
        metrics=metrics,
        training=_training_record(cfg, xgb.__version__),
    )
    return TrainResult(model_json, meta, seconds)


def _train_mix(cfg: TrainConfig) -> dict:
    """The fraud mix of the training data: cfg.train_mix for the stateful model."""
    return cfg.train_mix if cfg.stateful else dict(synth.DEFAULT_MIX)


def _predict(booster, data: Data) -> np.ndarray:
    import xgboost as xgb

    return booster.predict(xgb.DMatrix(data.x)).astype(np.float32)


def evaluate_patterns(data: Data, scores: np.ndarray, threshold: float, prefix: str
                      ) -> dict[str, Metrics]:
    """"<prefix>/<pattern>": each fraud pattern's rows against all legit rows (so recall is
    the pattern's own, precision what alerts would have if it were the only fraud)."""
    out = {}
    legit = data.pattern == synth.LEGIT
    for code, name in enumerate(synth.PATTERN_NAMES[1:], start=1):
        rows = legit | (data.pattern == code)
        if (data.pattern == code).any():
            out[f"{prefix}/{name}"] = evaluate(data.label[rows], scores[rows], threshold)
    return out


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
    rec["train_mix"] = dict(_train_mix(cfg))
    rec["generator"] = {
        "module": "bench.load.synth", "mix": dict(synth.DEFAULT_MIX),
        "train_seed": cfg.seed, "validation_seed": cfg.seed + 1, "holdout_seed": cfg.seed + 2,
        "skewed_stream_seed": "each seed + 1000003",
    }
    if cfg.stateful:
        from bench.model import velocity
        rec["velocity"] = {"module": "core.velocity via bench.model.velocity",
                           "partitions": velocity.PARTITIONS, "batch": velocity.BATCH}
    rec["xgboost_version"] = xgb_version
    return rec


def encode_meta(meta: ModelMeta) -> bytes:
    return msgspec.json.format(msgspec.json.encode(meta), indent=2) + b"\n"


def _names(result: TrainResult) -> tuple[str, str]:
    return artifact_names(len(result.meta.feature_names) > len(FEATURE_NAMES))


def write_artifacts(result: TrainResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write the model JSON and its metadata into out_dir; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_file, meta_file = _names(result)
    model_path, meta_path = out / model_file, out / meta_file
    model_path.write_bytes(result.model_json)
    meta_path.write_bytes(encode_meta(result.meta))
    return model_path, meta_path


def check_artifacts(result: TrainResult, out_dir: str | Path) -> list[str]:
    """Differences between a fresh training result and the artifacts in out_dir ([] = same)."""
    out = Path(out_dir)
    model_file, meta_file = _names(result)
    problems = []
    try:
        committed = (out / meta_file).read_bytes()
    except OSError as exc:
        return [f"cannot read {out / meta_file}: {exc.strerror or exc}"]
    fresh = encode_meta(result.meta)
    if committed != fresh:
        old = msgspec.json.decode(committed)
        new = msgspec.json.decode(fresh)
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                problems.append(f"metadata field {key!r}: committed {old.get(key)!r}, "
                                f"training gives {new.get(key)!r}")
    try:
        model_bytes = (out / model_file).read_bytes()
    except OSError as exc:
        problems.append(f"cannot read {out / model_file}: {exc.strerror or exc}")
    else:
        if model_bytes != result.model_json:
            problems.append(f"{out / model_file} differs from the model training produces")
    return problems
