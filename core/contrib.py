"""Per-prediction feature contributions of the tree ensemble (Saabas), for flagged rows only.

The compiled tl2cgen library returns scores, not contributions. Exact TreeSHAP (XGBoost's
`pred_contribs`) would need xgboost at runtime and costs ~100x more per row, so contributions are
Saabas's: every node of every tree gets the cover-weighted mean of the leaf values under it (as
XGBoost computes them for `approx_contribs`); walking a row down a tree, each split credits its
feature with mean(child taken) - mean(node). Per tree the credits telescope to
leaf value - mean(root), so the row's contributions plus the bias (sum of the roots' means plus
the base margin) add up to the model's margin exactly (up to float rounding). That is the
same as summing a precomputed contribution vector per leaf; storing each delta on the node it
leads to keeps those vectors sparse (at most depth entries per leaf).

Everything is built once from the XGBoost JSON when the model loads (no xgboost import):

    c = Contributions.from_xgboost_json(raw_bytes)
    out = c.compute(x)          # x float32 (n, N_FEATURES) -> float64 (n, N_FEATURES + 1),
                                # the last column is the bias; each row sums to the margin
"""

from __future__ import annotations

import math

import msgspec
import numba as nb
import numpy as np

from core.errors import ModelError
from core.features import N_FEATURES

__all__ = ["Contributions"]


class _Tree(msgspec.Struct, frozen=True):
    left_children: list[int]
    right_children: list[int]
    split_indices: list[int]
    split_conditions: list[float]
    default_left: list[int]
    sum_hessian: list[float]
    split_type: list[int] = []


class _Booster(msgspec.Struct, frozen=True):
    trees: list[_Tree]
    tree_info: list[int]


class _GradientBooster(msgspec.Struct, frozen=True):
    name: str
    model: _Booster | None = None


class _Objective(msgspec.Struct, frozen=True):
    name: str


class _LearnerParam(msgspec.Struct, frozen=True):
    base_score: str


class _Learner(msgspec.Struct, frozen=True):
    gradient_booster: _GradientBooster
    learner_model_param: _LearnerParam
    objective: _Objective


class _XGBModel(msgspec.Struct, frozen=True):
    learner: _Learner


# Objectives whose score is sigmoid(margin) (base_score is then stored as a probability), and
# the ones whose base_score already is a margin.
_LOGISTIC = ("binary:logistic", "reg:logistic")
_RAW = ("binary:logitraw",)


class Contributions:
    """Saabas contributions of one XGBoost model, as flat node arrays for a numba walk."""

    __slots__ = ("feature", "threshold", "left", "right", "default_left", "delta", "roots",
                 "bias", "n_features")

    def __init__(self, feature, threshold, left, right, default_left, delta, roots, bias,
                 n_features: int = N_FEATURES):
        self.feature, self.threshold = feature, threshold
        self.left, self.right, self.default_left = left, right, default_left
        self.delta, self.roots, self.bias = delta, roots, float(bias)
        self.n_features = n_features

    @classmethod
    def from_xgboost_json(cls, raw: bytes, n_features: int = N_FEATURES) -> "Contributions":
        """From the bytes of an XGBoost JSON model reading n_features columns (the model's
        feature_names); ModelError when it is not one we can explain."""
        try:
            learner = msgspec.json.decode(raw, type=_XGBModel).learner
        except msgspec.DecodeError as exc:
            raise ModelError(f"cannot read the trees for reason codes: {exc}") from exc
        booster = learner.gradient_booster
        if booster.name != "gbtree" or booster.model is None:
            raise ModelError(f"reason codes need a gbtree model, not {booster.name!r}")
        if any(group != 0 for group in booster.model.tree_info):
            raise ModelError("reason codes need a single-output model (one tree group)")
        base = _base_margin(learner.objective.name, learner.learner_model_param.base_score)
        *arrays, roots_mean = _flatten(booster.model.trees, n_features)
        return cls(*arrays, base + roots_mean, n_features)

    @property
    def n_trees(self) -> int:
        return self.roots.shape[0]

    def compute(self, x: np.ndarray) -> np.ndarray:
        """float64 (n, n_features + 1) contributions of float32 rows x; last column the bias."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        n = self.n_features
        if x.ndim != 2 or x.shape[1] != n:
            raise ValueError(f"expected (n, {n}) rows, got {x.shape}")
        out = np.zeros((x.shape[0], n + 1), dtype=np.float64)
        _walk(x, self.feature, self.threshold, self.left, self.right, self.default_left,
              self.delta, self.roots, out)
        out[:, n] += self.bias
        return out


def _base_margin(objective: str, base_score: str) -> float:
    # XGBoost >= 3 writes "[1.014E-2]" (one value per target), older versions "1.014E-2".
    try:
        values = [float(v) for v in base_score.strip("[]").split(",")]
    except ValueError:
        raise ModelError(f"unreadable base_score {base_score!r}") from None
    if len(values) != 1:
        raise ModelError(f"reason codes need one base score, got {base_score!r}")
    p = values[0]
    if objective in _LOGISTIC:
        if not 0.0 < p < 1.0:
            raise ModelError(f"base_score {p} of a {objective} model is not a probability")
        return math.log(p / (1.0 - p))
    if objective in _RAW:
        return p
    raise ModelError(f"reason codes do not know the margin of objective {objective!r}")


def _flatten(trees: list[_Tree], n_features: int):
    """Concatenate the trees into node arrays; child indices become global node indices."""
    feature, threshold, left, right, dleft, delta, roots = [], [], [], [], [], [], []
    bias = 0.0
    for tree in trees:
        n = len(tree.left_children)
        if any(tree.split_type):
            raise ModelError("reason codes need numerical splits only (no categorical)")
        mean = _node_means(tree)
        offset = len(feature)
        roots.append(offset)
        bias += mean[0]
        for i in range(n):
            leaf = tree.left_children[i] == -1
            feature.append(0 if leaf else tree.split_indices[i])
            threshold.append(tree.split_conditions[i])
            left.append(-1 if leaf else offset + tree.left_children[i])
            right.append(-1 if leaf else offset + tree.right_children[i])
            dleft.append(tree.default_left[i])
            delta.append(0.0)
        for i in range(n):
            for child in (tree.left_children[i], tree.right_children[i]):
                if child != -1:
                    delta[offset + child] = mean[child] - mean[i]
    if not trees or max(feature) >= n_features:
        raise ModelError(f"the trees do not fit {n_features} features")
    return (np.array(feature, dtype=np.int32), np.array(threshold, dtype=np.float32),
            np.array(left, dtype=np.int32), np.array(right, dtype=np.int32),
            np.array(dleft, dtype=np.bool_), np.array(delta, dtype=np.float64),
            np.array(roots, dtype=np.int32), bias)


def _node_means(tree: _Tree) -> list[float]:
    """Each node's cover-weighted mean leaf value (XGBoost's FillNodeMeanValues)."""
    n = len(tree.left_children)
    mean = [0.0] * n

    def fill(i: int) -> float:
        left, right = tree.left_children[i], tree.right_children[i]
        if left == -1:
            mean[i] = float(np.float32(tree.split_conditions[i]))  # a leaf's value
        else:
            cover = tree.sum_hessian
            mean[i] = (fill(left) * cover[left] + fill(right) * cover[right]) / cover[i]
        return mean[i]

    fill(0)
    return mean


@nb.njit(cache=True, nogil=True)
def _walk(x, feature, threshold, left, right, default_left, delta, roots, out):
    # XGBoost's rule: go left when x < threshold (float32 compare), NaN takes the default.
    for r in range(x.shape[0]):
        for t in range(roots.shape[0]):
            node = roots[t]
            while left[node] != -1:
                f = feature[node]
                v = x[r, f]
                if np.isnan(v):
                    child = left[node] if default_left[node] else right[node]
                elif v < threshold[node]:
                    child = left[node]
                else:
                    child = right[node]
                out[r, f] += delta[child]
                node = child
