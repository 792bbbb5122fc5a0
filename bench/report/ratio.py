"""Ratios of two rates as ranges: a rate search brackets each rate between the highest step
that held and the lowest that missed above it, so B over A is known only as B's bracket over
A's, and a single figure with a decimal ("362.1x") claims a precision nobody measured.

    ratio_range((238, 283), (86_108, 102_400))   # (304.3, 430.3)
    ratio_text((304.3, 430.3))                   # '300–440x'
"""

import math

__all__ = ["ratio_range", "ratio_text"]

Bracket = tuple[float, float | None]


def ratio_range(a: Bracket | None, b: Bracket | None) -> tuple[float | None, float | None] | None:
    """B over A from their brackets [low, high): (B low / A high, B high / A low). A high of
    None (nothing above the rate missed) makes that side unbounded: None. None without both."""
    if a is None or b is None or not a[0] or not b[0]:
        return None
    (a_lo, a_hi), (b_lo, b_hi) = a, b
    return (b_lo / a_hi if a_hi else None, b_hi / a_lo if b_hi else None)


def _round(x: float, up: bool) -> str:
    """Two significant figures, rounded outwards (a range only ever widens)."""
    digits = math.floor(math.log10(x)) - 1 if x > 0 else 0
    scale = 10.0 ** digits
    # the epsilon keeps a ratio already on the grid (3.0) from moving a step out
    v = (math.ceil(x / scale - 1e-9) if up else math.floor(x / scale + 1e-9)) * scale
    return f"{v:.1f}" if v < 10 else f"{v:,.0f}"


def ratio_text(r: tuple[float | None, float | None] | None) -> str:
    """`low–high x`, two significant figures rounded outwards; `>= low x` / `<= high x` with
    one side unbounded; `-` when there is nothing to divide."""
    if r is None or r == (None, None):
        return "-"
    lo, hi = r
    if hi is None:
        return f">= {_round(lo, False)}x"
    if lo is None:
        return f"<= {_round(hi, True)}x"
    a, b = _round(lo, False), _round(hi, True)
    return f"{a}x" if a == b else f"{a}–{b}x"
