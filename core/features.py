"""Model features: one layout shared by training and scoring (no train/serve skew).

A batch is a float32 matrix with one row per transaction and the columns named in
FEATURE_NAMES. The decoder writes the raw columns (V1..V28, amount, hour) straight into
the matrix; `fill_derived` computes the rest in place. Training calls `build_features`,
which goes through the same `fill_derived`.
"""

import numpy as np

__all__ = [
    "FEATURE_NAMES", "N_FEATURES", "N_V", "AMOUNT", "LOG_AMOUNT", "HOUR",
    "IS_MICRO", "IS_ROUND", "IS_HIGH", "empty_matrix", "fill_derived", "build_features",
]

N_V = 28
FEATURE_NAMES = tuple(f"V{i}" for i in range(1, N_V + 1)) + (
    "amount", "log_amount", "hour", "is_micro", "is_round", "is_high",
)
N_FEATURES = len(FEATURE_NAMES)
AMOUNT, LOG_AMOUNT, HOUR, IS_MICRO, IS_ROUND, IS_HIGH = range(N_V, N_FEATURES)

# Pattern thresholds from the card-testing / high-amount fraud the seed describes.
MICRO_MAX = 1.0
ROUND_MIN = 100.0
HIGH_MIN = 500.0


def empty_matrix(n: int) -> np.ndarray:
    """A C-contiguous float32 feature matrix for n rows, ready for the decoder to fill."""
    return np.empty((n, N_FEATURES), dtype=np.float32)


def fill_derived(x: np.ndarray) -> np.ndarray:
    """Compute the derived columns of x in place from its raw columns; returns x."""
    amount = x[:, AMOUNT]
    np.log1p(amount, out=x[:, LOG_AMOUNT])
    x[:, IS_MICRO] = amount <= MICRO_MAX
    x[:, IS_ROUND] = (amount >= ROUND_MIN) & (amount == np.floor(amount))
    x[:, IS_HIGH] = amount >= HIGH_MIN
    return x


def build_features(amount, hour, v) -> np.ndarray:
    """Feature matrix from columns: amount (n,), hour of day (n,), V1..V28 (n, 28)."""
    v = np.asarray(v, dtype=np.float32)
    n = v.shape[0]
    if v.shape != (n, N_V):
        raise ValueError(f"v must have shape (n, {N_V}), got {v.shape}")
    x = empty_matrix(n)
    x[:, :N_V] = v
    x[:, AMOUNT] = amount
    x[:, HOUR] = hour
    return fill_derived(x)
