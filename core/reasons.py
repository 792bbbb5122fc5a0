"""Reason codes: the top features that pushed a flagged transaction's score up.

Contributions come from core.contrib (per feature, in log-odds, adding up to the margin).
Features that are one quantity for a person are reported together: `amount` and `log_amount`
are both the amount, so their contributions are summed into one AMOUNT reason (otherwise the
amount would often take two of the three places). Each reason has a stable code:

    AMOUNT            amount and log(1 + amount)   value: the amount
    AMOUNT_MICRO      is_micro   (amount <= 1.00)  value: 1 or 0
    AMOUNT_ROUND      is_round   (whole, >= 100)   value: 1 or 0
    AMOUNT_HIGH       is_high    (amount >= 500)   value: 1 or 0
    HOUR_OF_DAY       hour (UTC)                   value: 0..23
    BEHAVIOUR_V1..28  the anonymised PCA columns   value: Vk (no plain-language meaning)

Only positive contributions are reasons (at most 3, largest first): a flagged row nearly
always has three.

    reasons = Reasoner(model.contributions).explain(x_flagged)   # [tuple[Reason, ...]] per row
"""

from __future__ import annotations

import numpy as np

from core.contrib import Contributions
from core.features import (
    AMOUNT, FEATURE_NAMES, HIGH_MIN, HOUR, IS_HIGH, IS_MICRO, IS_ROUND, LOG_AMOUNT, MICRO_MAX,
    N_FEATURES, N_V, ROUND_MIN,
)
from core.schema import Reason

__all__ = ["Reasoner", "CODES", "TOP", "reason_text"]

TOP = 3


def _flag(yes: str, no: str):
    return lambda value: yes if value >= 0.5 else no


_TEXTS = {
    "AMOUNT": lambda value: f"amount of {value:,.2f}",
    "AMOUNT_MICRO": _flag(f"micro amount ({MICRO_MAX:.2f} or less), as in card testing",
                          "not a micro amount"),
    "AMOUNT_ROUND": _flag(f"round amount (a whole {ROUND_MIN:.0f} or more)",
                          "not a round amount"),
    "AMOUNT_HIGH": _flag(f"high amount ({HIGH_MIN:,.2f} or more)", "not a high amount"),
    "HOUR_OF_DAY": lambda value: f"made between {int(value):02d}:00 and {int(value):02d}:59 UTC",
}

# (code, feature columns whose contributions it sums, column giving its value, decimals)
_GROUPS = (
    [(f"BEHAVIOUR_V{k}", (k - 1,), k - 1, 6) for k in range(1, N_V + 1)]
    + [("AMOUNT", (AMOUNT, LOG_AMOUNT), AMOUNT, 2), ("HOUR_OF_DAY", (HOUR,), HOUR, 0),
       ("AMOUNT_MICRO", (IS_MICRO,), IS_MICRO, 0), ("AMOUNT_ROUND", (IS_ROUND,), IS_ROUND, 0),
       ("AMOUNT_HIGH", (IS_HIGH,), IS_HIGH, 0)]
)
CODES = tuple(code for code, _, _, _ in _GROUPS)
assert sorted(c for _, cols, _, _ in _GROUPS for c in cols) == list(range(N_FEATURES)), \
    f"every feature of {FEATURE_NAMES} belongs to exactly one reason"


def reason_text(code: str, value: float) -> str:
    """The sentence a person reads for a reason code and its value."""
    text = _TEXTS.get(code)
    if text is not None:
        return text(value)
    return f"behaviour pattern {code.removeprefix('BEHAVIOUR_')} = {value:.3f} " \
           f"(anonymised feature)"


class Reasoner:
    """Turns feature rows into their top reasons, with the model's contributions."""

    __slots__ = ("contributions", "_sum", "_value_col", "_decimals")

    def __init__(self, contributions: Contributions):
        self.contributions = contributions
        # (N_FEATURES + 1, groups): contributions @ _sum gives each reason's contribution;
        # the bias row (last) belongs to no reason.
        self._sum = np.zeros((N_FEATURES + 1, len(_GROUPS)), dtype=np.float64)
        for g, (_, cols, _, _) in enumerate(_GROUPS):
            self._sum[list(cols), g] = 1.0
        self._value_col = np.array([col for _, _, col, _ in _GROUPS], dtype=np.int64)
        self._decimals = [d for _, _, _, d in _GROUPS]

    def explain(self, x: np.ndarray) -> list[tuple[Reason, ...]]:
        """The top reasons of each row of x (float32 (n, N_FEATURES)), in row order."""
        if x.shape[0] == 0:
            return []
        grouped = self.contributions.compute(x) @ self._sum
        top = np.argsort(-grouped, axis=1, kind="stable")[:, :TOP]
        values = x[:, self._value_col].astype(np.float64)
        out = []
        for i, row in enumerate(top.tolist()):
            reasons = []
            for g in row:
                c = float(grouped[i, g])
                if not c > 0.0:
                    break
                code = CODES[g]
                value = round(float(values[i, g]), self._decimals[g])
                reasons.append(Reason(code=code, value=value, contribution=round(c, 4),
                                      text=reason_text(code, value)))
            out.append(tuple(reasons))
        return out
