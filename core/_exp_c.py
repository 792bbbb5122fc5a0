"""The compiled model's sigmoid without the C library's expf, so scores are CPU-independent.

tl2cgen's postprocess() computes 1 / (1 + expf(-margin)). glibc's expf is chosen at run time
by the CPU (an FMA variant where FMA exists), and its variants may round a result
differently: the same margins could then score an ulp apart on two machines. `use_own_exp`
points postprocess() at `fraudstream_exp` below: exp in double with +, -, * only (IEEE-754
exact on every x86-64 CPU), rounded once to float. The library is compiled for the
baseline x86-64 ISA, which has no FMA, and with -ffp-contract=off (core.model) besides.
"""

__all__ = ["EXP_C", "use_own_exp"]

# Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2 (LN2_HI has 21 trailing zero bits, so
# k * LN2_HI is exact), then a degree-13 Taylor polynomial of exp(r) (truncation < 1e-17)
# and an exact scaling by 2^k. The error stays within a few double ulps, far below float's
# half ulp: the float is the correctly rounded expf but for ~1 input in 2^25.
EXP_C = r"""
static float fraudstream_exp(float x) {
  double xd = (double)x;
  if (xd != xd) return x;
  /* beyond these, the float result is inf or 0 anyway; keeps 2^k a normal double */
  if (xd > 100.0) xd = 100.0;
  if (xd < -110.0) xd = -110.0;
  const double shift = 6755399441055744.0;           /* 1.5 * 2^52: rounds to an integer */
  double kd = xd * 1.4426950408889634074 + shift;     /* x / ln2 */
  kd -= shift;
  double r = (xd - kd * 6.93147180369123816490e-01)   /* ln2 high part: 3fe62e42 fee00000 */
             - kd * 1.90821492927058770002e-10;       /* ln2 low part:  3dea39ef 35793c76 */
  double p = 1.0 / 6227020800.0;                      /* 1/13! */
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  union { double d; uint64_t u; } scale;
  scale.u = (uint64_t)((int64_t)kd + 1023) << 52;
  return (float)(p * scale.d);
}
"""

_INCLUDE = '#include "header.h"\n'


def use_own_exp(main_c: str) -> str | None:
    """tl2cgen's main.c with postprocess() calling fraudstream_exp instead of expf, or None
    when main.c does not look as expected (one expf call, after the header include)."""
    if main_c.count("expf(") != 1 or main_c.count(_INCLUDE) != 1:
        return None
    return main_c.replace("expf(", "fraudstream_exp(").replace(_INCLUDE, _INCLUDE + EXP_C)
