"""Distributions the ABTest statistics need, without SciPy (not a runtime dependency).

The normal distribution comes from the standard library (`statistics.NormalDist`, whose
quantile is Wichura's AS 241); Student's t from the regularized incomplete beta function,
evaluated by its continued fraction (Numerical Recipes, `betai`/`betacf`). Pure functions
of floats; tests compare them with SciPy to 1e-6.
"""

from __future__ import annotations

import math
from statistics import NormalDist

_STANDARD_NORMAL = NormalDist()
# Beyond this many degrees of freedom t is the normal to within 1e-8, and lgamma of such
# large arguments would cost the incomplete beta more precision than that.
NORMAL_DF = 1e7


def normal_cdf(x: float) -> float:
    # erfc keeps the relative precision of the lower tail that 1 + erf(x) would lose.
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def normal_ppf(q: float) -> float:
    return _STANDARD_NORMAL.inv_cdf(q)


def two_sided_normal_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of I_x(a, b) (Numerical Recipes `betacf`, modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    # Converges in O(sqrt(max(a, b))) steps; Welch's df reach the millions in big tests.
    for m in range(1, 100_000):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((a + m2 - 1.0) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete beta did not converge for a={a}, b={b}, x={x}")


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    # The fraction converges fast only left of the mode; use the symmetry on the right.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom (df may be fractional)."""
    if df > NORMAL_DF:
        return two_sided_normal_p(t)
    return regularized_beta(df / 2.0, 0.5, df / (df + t * t))


def student_t_cdf(t: float, df: float) -> float:
    tail = 0.5 * student_t_two_sided_p(t, df)
    return 1.0 - tail if t >= 0 else tail


def _student_t_pdf(t: float, df: float) -> float:
    log_pdf = (
        math.lgamma((df + 1.0) / 2.0)
        - math.lgamma(df / 2.0)
        - 0.5 * math.log(df * math.pi)
        - (df + 1.0) / 2.0 * math.log1p(t * t / df)
    )
    return math.exp(log_pdf)


def student_t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t: Newton's method from the normal quantile, kept in a bracket."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile level must be in (0, 1), got {q}")
    if q < 0.5:
        return -student_t_ppf(1.0 - q, df)
    if df > NORMAL_DF:  # Cornish-Fisher: the next term is of order 1 / df^2
        z = normal_ppf(q)
        return z + (z**3 + z) / (4.0 * df)
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < q:  # t's quantiles exceed the normal's: widen first
        low, high = high, high * 2.0
    t = min(max(normal_ppf(q), low), high)
    for _ in range(200):
        error = student_t_cdf(t, df) - q
        if error == 0.0:
            return t
        if error > 0:
            high = t
        else:
            low = t
        candidate = t - error / _student_t_pdf(t, df)
        # Fall back to bisection whenever Newton would leave the bracket.
        step_to = candidate if low < candidate < high else (low + high) / 2.0
        if abs(step_to - t) <= 1e-13 * max(1.0, abs(t)):
            return step_to
        t = step_to
    return t
