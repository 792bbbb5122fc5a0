"""Model features: one layout shared by training and scoring (no train/serve skew).

A batch is a float32 matrix with one row per transaction and the columns named in
FEATURE_NAMES. The decoder writes the raw columns (V1..V28, amount, hour) straight into
the matrix; `fill_derived` computes the rest in place. Training calls `build_features`,
which goes through the same `fill_derived`.

Derived features are bit-identical whatever the batch a row arrives in and whatever the
x86-64 CPU: replays after an abort, and per-card state, rely on it. numpy's float32 `log1p`
does not give that: it dispatches at run time to SIMD code (AVX-512 SVML on Xeons) for
arrays of two or more elements, to libm for one, and to other code again for strided
columns, and the three disagree by an ulp on ~5 % of amounts. So `fill_derived` is one
numba kernel that computes each row on its own, in a fixed sequence of IEEE-754 basic
operations (below: `_log1p`).
"""

import numba as nb
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
    if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != N_FEATURES:
        raise ValueError(f"x must be a float32 (n, {N_FEATURES}) matrix, "
                         f"got {x.dtype} {x.shape}")
    _fill_derived(x)
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


# -- the kernel -----------------------------------------------------------------------------
#
# Why the result cannot depend on the batch or the CPU: every value is computed from its own
# row only, by +, -, *, /, comparisons, int<->float conversions and bit moves, each of which
# IEEE 754 defines to the last bit (round to nearest even) and every x86-64 CPU performs with
# SSE2 or its AVX encodings alike. No libm call (glibc picks FMA variants of its functions at
# run time), no numpy ufunc, no fastmath: without fast-math flags LLVM may neither reassociate
# nor contract a*b+c into an FMA, so if it vectorises the loop each lane still does exactly
# the scalar sequence. tests/core/test_feature_determinism.py checks the machine code for
# calls and FMAs, and the values at batch sizes 1, 7, 300 and 8,192.
# (The code bakes the column constants in; numba's cache is keyed on this file, so they live
# here.) error_model="numpy": no zero check per division (no divisor here can be zero).
_jit = nb.njit(cache=True, nogil=True, boundscheck=False, _nrt=False, error_model="numpy")
_helper = nb.njit(cache=True, nogil=True, boundscheck=False, _nrt=False, error_model="numpy",
                  inline="always")

# fdlibm's constants (the hex is the intended double)
_LN2_HI = 6.93147180369123816490e-01   # 3fe62e42 fee00000
_LN2_LO = 1.90821492927058770002e-10   # 3dea39ef 35793c76
_LG1 = 6.666666666666735130e-01        # 3fe55555 55555593
_LG2 = 3.999999999940941908e-01        # 3fd99999 9997fa04
_LG3 = 2.857142874366239149e-01        # 3fd24924 94229359
_LG4 = 2.222219843214978396e-01        # 3fcc71c5 1d8e78af
_LG5 = 1.818357216161805012e-01        # 3fc74664 96cb03de
_LG6 = 1.531383769920937332e-01        # 3fc39a09 d078c69f
_LG7 = 1.479819860511658591e-01        # 3fc2f112 df3e5244
_LOW32 = 0xFFFFFFFF


@_helper
def _log1p(x):
    """log(1 + x) for a double: fdlibm's algorithm (the form musl uses), < 1 ulp of double,
    so rounded to float32 it is the correctly rounded float32 but for ~1 input in 2^28."""
    bits = np.float64(x).view(np.int64)
    hx = (bits >> 32) & _LOW32                  # the high word, as fdlibm reads it (unsigned)
    k = 1
    c = 0.0
    f = 0.0
    if hx < 0x3FDA827A or hx >= 0x80000000:     # 1 + x < sqrt(2), or x negative (or -NaN)
        if hx >= 0xBFF00000:                    # x <= -1
            return -np.inf if x == -1.0 else np.nan
        if (hx & 0x7FFFFFFF) < 0x3CA00000:      # |x| < 2^-53: log1p(x) rounds to x
            return x
        if hx <= 0xBFD2BEC4:                    # sqrt(2)/2 <= 1 + x < sqrt(2): no reduction
            k = 0
            f = x
    elif hx >= 0x7FF00000:                      # +inf, NaN
        return x
    if k != 0:
        u = 1.0 + x
        hu = ((np.float64(u).view(np.int64) >> 32) & _LOW32) + (0x3FF00000 - 0x3FE6A09E)
        k = (hu >> 20) - 0x3FF
        if k < 54:                              # the rounding error of 1 + x, relative to u
            c = 1.0 - (u - x) if k >= 2 else x - (u - 1.0)
            c /= u
        hu = (hu & 0x000FFFFF) + 0x3FE6A09E     # u scaled into [sqrt(2)/2, sqrt(2))
        f = np.int64((hu << 32) | (np.float64(u).view(np.int64) & _LOW32)).view(np.float64)
        f -= 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    r = t2 + t1
    dk = np.float64(k)
    return s * (hfsq + r) + (dk * _LN2_LO + c) - hfsq + f + dk * _LN2_HI


@_jit
def _fill_derived(x):
    for i in range(x.shape[0]):
        a = x[i, AMOUNT]
        x[i, LOG_AMOUNT] = np.float32(_log1p(np.float64(a)))
        x[i, IS_MICRO] = 1.0 if a <= MICRO_MAX else 0.0
        x[i, IS_ROUND] = 1.0 if a >= ROUND_MIN and a == np.floor(a) else 0.0
        x[i, IS_HIGH] = 1.0 if a >= HIGH_MIN else 0.0
