"""Reason codes: the top features that pushed a flagged transaction's score up.

Contributions come from core.contrib (per feature, in log-odds, adding up to the margin).
Features that are one quantity for a person are reported together: amount, log(1 + amount),
is_micro, is_round and is_high are all the amount, so their contributions are summed into one
amount reason (otherwise the amount would often take two of the three places, and which of
its five encodings a tree happened to split on would decide the code). Its code says what kind
of amount it is; its value is the amount. Each reason has a stable code:

    AMOUNT_MICRO      the amount, when <= 1.00 (as in card testing)     value: the amount
    AMOUNT_HIGH       the amount, when >= 500.00                        value: the amount
    AMOUNT_ROUND      the amount, when a whole 100 or more (not high)   value: the amount
    AMOUNT            the amount, any other                             value: the amount
    HOUR_OF_DAY       hour (UTC)                                        value: 0..23
    BEHAVIOUR_V1..28  the anonymised PCA columns   value: Vk (no plain-language meaning)

and, for a model that uses the per-card state (core.velocity), one code per velocity feature
(VELOCITY_REASONS: CARD_TX_1M, CARD_AMOUNT_1M, ..., CARD_MICRO_10M), value: the feature.

Only positive contributions are reasons (at most 3, largest first): a flagged row nearly
always has three.

    reasons = Reasoner(model.contributions).explain(x_flagged)   # [tuple[Reason, ...]] per row
"""

from __future__ import annotations

import numba as nb
import numpy as np

from core.contrib import Contributions
from core.features import (
    AMOUNT, FEATURE_NAMES, HIGH_MIN, HOUR, IS_HIGH, IS_MICRO, IS_ROUND, LOG_AMOUNT, MICRO_MAX,
    N_FEATURES, N_V, ROUND_MIN,
)
from core.schema import Reason
from core.velocity import VELOCITY_COUNTS, VELOCITY_FEATURES

__all__ = ["Reasoner", "CODES", "TOP", "reason_text", "VELOCITY_REASONS"]

TOP = 3


_TEXTS = {
    "AMOUNT": lambda value: f"amount of {value:,.2f}",
    "AMOUNT_MICRO": lambda value: f"micro amount of {value:,.2f} ({MICRO_MAX:.2f} or less), as in card testing",
    "AMOUNT_ROUND": lambda value: f"round amount of {value:,.2f} (a whole {ROUND_MIN:.0f} or more)",
    "AMOUNT_HIGH": lambda value: f"high amount of {value:,.2f} ({HIGH_MIN:,.2f} or more)",
    "HOUR_OF_DAY": lambda value: f"made between {int(value):02d}:00 and {int(value):02d}:59 UTC",
    # the per-card state's features (core.velocity), in VELOCITY_FEATURES order
    "CARD_TX_1M": lambda value: f"{int(value)} transactions on this card in the last minute",
    "CARD_AMOUNT_1M": lambda value: f"{value:,.2f} spent on this card in the last minute",
    "CARD_TX_1H": lambda value: f"{int(value)} transactions on this card in the last hour",
    "CARD_AMOUNT_1H": lambda value: f"{value:,.2f} spent on this card in the last hour",
    "CARD_TX_24H": lambda value: f"{int(value)} transactions on this card in 24 hours",
    "CARD_AMOUNT_24H": lambda value: f"{value:,.2f} spent on this card in 24 hours",
    "CARD_SECS_SINCE_PREV": lambda value: ("first transaction seen on this card" if value != value
                                           else f"{value:,.0f} s after the card's previous transaction"),
    "CARD_AMOUNT_Z": lambda value: f"amount {value:+.1f} standard deviations from this card's usual",
    "CARD_MCC_24H": lambda value: f"{int(value)} different merchant categories on this card in 24 hours",
    "CARD_MICRO_10M": lambda value: (f"{int(value)} micro amounts ({MICRO_MAX:.2f} or less) on this "
                                     "card in 10 minutes, as in card testing"),
    "CARD_TX_10M": lambda value: f"{int(value)} transactions on this card in 10 minutes",
    "CARD_MCC_10M": lambda value: f"{int(value)} different merchant categories on this card in 10 minutes",
    "CARD_MICRO_1M": lambda value: (f"{int(value)} micro amounts ({MICRO_MAX:.2f} or less) on this "
                                    "card in the last minute, as in card testing"),
    "CARD_SECS_SINCE_MICRO": lambda value: (
        "no earlier micro amount on this card in 24 hours" if value != value
        else f"{value:,.0f} s after the card's previous micro amount ({MICRO_MAX:.2f} or less)"),
}
# (code, the core.velocity feature it explains, decimals its value is written with): for a
# model whose feature_names end with core.velocity.VELOCITY_FEATURES
VELOCITY_REASONS = tuple((name.upper(), name, 0 if name in VELOCITY_COUNTS else 2)
                         for name in VELOCITY_FEATURES)

# (code, feature columns whose contributions it sums, column giving its value, decimals)
_GROUPS = (
    [(f"BEHAVIOUR_V{k}", (k - 1,), k - 1, 6) for k in range(1, N_V + 1)]
    + [("AMOUNT", (AMOUNT, LOG_AMOUNT, IS_MICRO, IS_ROUND, IS_HIGH), AMOUNT, 2),
       ("HOUR_OF_DAY", (HOUR,), HOUR, 0)]
)
_AMOUNT_GROUP = len(_GROUPS) - 2
# the amount reason's code by the row's flags, first match: (flag column, code)
_AMOUNT_KINDS = ((IS_MICRO, "AMOUNT_MICRO"), (IS_HIGH, "AMOUNT_HIGH"), (IS_ROUND, "AMOUNT_ROUND"))
assert sorted(c for _, cols, _, _ in _GROUPS for c in cols) == list(range(N_FEATURES)), \
    f"every feature of {FEATURE_NAMES} belongs to exactly one reason"
# a stateful model's columns after the 34: one reason per velocity feature
_VELOCITY_GROUPS = [(code, (N_FEATURES + i,), N_FEATURES + i, d)
                    for i, (code, _, d) in enumerate(VELOCITY_REASONS)]
# reason index -> code; the amount's kinds come last (they share the amount's reason index)
CODES = tuple(code for code, _, _, _ in _GROUPS + _VELOCITY_GROUPS) + tuple(c for _, c in _AMOUNT_KINDS)


def _groups(n_features: int) -> list:
    if n_features == N_FEATURES:
        return _GROUPS
    if n_features == N_FEATURES + len(VELOCITY_FEATURES):
        return _GROUPS + _VELOCITY_GROUPS
    raise ValueError(f"no reason codes for a model of {n_features} features")


def reason_text(code: str, value: float) -> str:
    """The sentence a person reads for a reason code and its value."""
    text = _TEXTS.get(code)
    if text is not None:
        return text(value)
    return f"behaviour pattern {code.removeprefix('BEHAVIOUR_')} = {value:.3f} " \
           f"(anonymised feature)"


class Reasoner:
    """Turns feature rows into their top reasons, with the model's contributions."""

    __slots__ = ("contributions", "_group_of", "_value_col", "_scale", "_texts", "_cached")

    def __init__(self, contributions: Contributions):
        self.contributions = contributions
        groups = _groups(contributions.n_features)
        self._group_of = np.empty(contributions.n_features, dtype=np.int64)  # column -> reason
        for g, (_, cols, _, _) in enumerate(groups):
            self._group_of[list(cols)] = g
        self._value_col = np.array([col for _, _, col, _ in groups], dtype=np.int64)
        # values are written rounded: the amount to cents, V to the 6 decimals it arrives with
        self._scale = np.array([10.0 ** d for _, _, _, d in groups])
        self._texts: dict[tuple[int, float], str] = {}
        self._cached = frozenset(g for g, (_, _, _, d) in enumerate(groups) if d == 0)

    def explain(self, x: np.ndarray) -> list[tuple[Reason, ...]]:
        """The top reasons of each row of x (float32 (n, the model's features)), in row order."""
        n = x.shape[0]
        if n == 0:
            return []
        contrib = self.contributions.compute(x)
        top = np.empty((n, TOP), dtype=np.int64)
        contribution = np.empty((n, TOP), dtype=np.float64)
        value = np.empty((n, TOP), dtype=np.float64)
        _top(contrib, x, self._group_of, self._value_col, self._scale, top, contribution, value)
        # one conversion to Python lists per batch: indexing numpy scalars per reason costs
        # more than the rest of the loop
        text, codes = self._text, CODES
        kinds = self._amount_kinds(x)
        out = []
        for groups, cs, vs, kind in zip(top.tolist(), contribution.tolist(), value.tolist(), kinds):
            reasons = []
            for g, c, v in zip(groups, cs, vs):
                if g < 0:
                    break
                if g == _AMOUNT_GROUP:
                    g = kind
                reasons.append(Reason(codes[g], v, c, text(g, v)))
            out.append(tuple(reasons))
        return out

    @staticmethod
    def _amount_kinds(x: np.ndarray) -> list[int]:
        """Per row: the index in CODES of its amount reason's code (by is_micro/high/round)."""
        kind = np.full(x.shape[0], _AMOUNT_GROUP, dtype=np.int64)
        first = len(CODES) - len(_AMOUNT_KINDS)
        for i, (col, _) in reversed(list(enumerate(_AMOUNT_KINDS))):   # the first match wins
            kind[x[:, col] >= 0.5] = first + i
        return kind.tolist()

    def _text(self, g: int, value: float) -> str:
        key = (g, value)
        text = self._texts.get(key)
        if text is None:
            text = reason_text(CODES[g], value)
            if g in self._cached:  # hours and counts: a handful of values
                self._texts[key] = text
        return text


@nb.njit(cache=True, nogil=True)
def _top(contrib, x, group_of, value_col, scale, top, contribution, value):
    """Per row: the TOP reasons with positive contribution, largest first (ties: the lower
    reason index), rounded as written; top is -1 past the last positive one."""
    grouped = np.empty(scale.shape[0], dtype=np.float64)
    for r in range(contrib.shape[0]):
        grouped[:] = 0.0
        for f in range(group_of.shape[0]):
            grouped[group_of[f]] += contrib[r, f]
        for k in range(top.shape[1]):
            best = -1
            for g in range(grouped.shape[0]):
                # >= 0.00005: what is written (4 decimals) is a positive contribution
                if grouped[g] >= 0.00005 and (best < 0 or grouped[g] > grouped[best]):
                    best = g
            top[r, k] = best
            if best < 0:
                contribution[r, k] = 0.0
                value[r, k] = 0.0
                continue
            contribution[r, k] = np.round(grouped[best] * 1e4) / 1e4
            s = scale[best]
            value[r, k] = np.round(np.float64(x[r, value_col[best]]) * s) / s
            grouped[best] = -np.inf
