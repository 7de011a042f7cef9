"""ABTest statistics, pure: tests, intervals, sample sizes, the sequential test, SRM, bandit.

Every function takes sufficient statistics (n, sum, sum of squares per arm) and settings
and returns figures; no I/O, no clock. The operator and `maestro abtest analyze` call the
same functions, so an analyst re-running a decision from stored figures gets the operator's
answer. The distributions (normal, Student's t) are in `distributions`, without SciPy.

Conventions: arm order is (champion, challenger); the lift is challenger minus champion, in
the metric's units (absolute, not relative); p-values are two-sided.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

from maestro.operators.abtest.distributions import (
    normal_ppf,
    student_t_ppf,
    student_t_two_sided_p,
    two_sided_normal_p,
)
from maestro.operators.api.abtest import ABTestSpec, MetricType

if TYPE_CHECKING:
    from numpy.random import Generator

# A split this unlikely under the configured ratio is broken (a routing bug, a crashing
# variant dropping outcomes): no decision is made until it recovers. Strict, because the
# check runs at every look and a false alarm only delays the test.
SRM_ALPHA = 0.001
# The mSPRT's mixing scale tau, in units of the minimum detectable effect: tau = MDE puts the
# prior's mass where effects worth detecting are; `make bench-abtest` measures what it costs.
TAU_PER_MDE = 1.0


class LookDecision(StrEnum):
    """What one look at the figures concludes."""

    CONTINUE = "Continue"
    PROMOTE_CHALLENGER = "PromoteChallenger"
    KEEP_CHAMPION = "KeepChampion"


@dataclass(frozen=True)
class ArmFigures:
    """Sufficient statistics of one arm: outcomes, their sum and (Continuous) sum of squares.

    For a Proportion metric `sum` is the count of successes and `sum_squares` is unused.
    """

    n: int
    sum: float
    sum_squares: float = 0.0

    @property
    def mean(self) -> float:
        return self.sum / self.n

    def variance(self, metric_type: MetricType) -> float:
        """Per-outcome variance: p(1-p) for a Proportion, the sample variance otherwise."""
        if metric_type is MetricType.PROPORTION:
            return self.mean * (1.0 - self.mean)
        # Rounding can make sum_squares - sum^2/n slightly negative for constant outcomes.
        return max(0.0, (self.sum_squares - self.sum * self.sum / self.n) / (self.n - 1))


@dataclass(frozen=True)
class TestSettings:
    """The spec fields the statistics depend on."""

    __test__: ClassVar[bool] = False  # not a pytest test class, despite its name

    metric_type: MetricType
    alpha: float = 0.05
    power: float = 0.8
    mde: float = 0.02
    higher_is_better: bool = True
    sequential: bool = True
    # Not in the spec: the benchmark varies it to show what the default costs.
    tau_per_mde: float = TAU_PER_MDE

    @classmethod
    def from_spec(cls, spec: ABTestSpec) -> TestSettings:
        return cls(
            metric_type=spec.metric_type,
            alpha=spec.alpha,
            power=spec.power,
            mde=spec.minimum_detectable_effect,
            higher_is_better=spec.higher_is_better,
            sequential=spec.sequential,
        )


@dataclass(frozen=True)
class Interval:
    """Interval of the lift at confidence `level` (1 - alpha)."""

    lower: float
    upper: float
    level: float


@dataclass(frozen=True)
class Comparison:
    """One test of challenger against champion at one look."""

    lift: float
    statistic: float
    p_value: float
    interval: Interval


@dataclass(frozen=True)
class LookResult:
    """What a look reports; None where the figures are too few to say."""

    lift: float | None
    p_value: float | None
    interval: Interval | None
    required_samples: int | None
    decision: LookDecision
    reason: str


# --- fixed-horizon tests -------------------------------------------------------------------


def two_proportion_z(champ: ArmFigures, chall: ArmFigures, *, alpha: float = 0.05) -> Comparison:
    """Two-proportion z-test: pooled variance for the p-value, unpooled Wald interval.

    Pooled, because under the null both arms share one rate; unpooled for the interval,
    because the interval is about a world where the rates differ.
    """
    p1, p2 = champ.mean, chall.mean
    lift = p2 - p1
    pooled = (champ.sum + chall.sum) / (champ.n + chall.n)
    se_null = math.sqrt(pooled * (1.0 - pooled) * (1.0 / champ.n + 1.0 / chall.n))
    z = lift / se_null if se_null > 0 else 0.0
    se = math.sqrt(p1 * (1.0 - p1) / champ.n + p2 * (1.0 - p2) / chall.n)
    half = normal_ppf(1.0 - alpha / 2.0) * se
    return Comparison(
        lift, z, two_sided_normal_p(z), Interval(lift - half, lift + half, 1.0 - alpha)
    )


def welch_t(champ: ArmFigures, chall: ArmFigures, *, alpha: float = 0.05) -> Comparison:
    """Welch's t-test (unequal variances) with its Welch-Satterthwaite interval."""
    lift = chall.mean - champ.mean
    v1 = champ.variance(MetricType.CONTINUOUS) / champ.n
    v2 = chall.variance(MetricType.CONTINUOUS) / chall.n
    se = math.sqrt(v1 + v2)
    if se == 0.0:
        # Constant outcomes in both arms: any difference is certain, none is no evidence.
        return Comparison(lift, 0.0, 1.0 if lift == 0 else 0.0, Interval(lift, lift, 1 - alpha))
    df = (v1 + v2) ** 2 / (v1 * v1 / (champ.n - 1) + v2 * v2 / (chall.n - 1))
    t = lift / se
    half = student_t_ppf(1.0 - alpha / 2.0, df) * se
    return Comparison(
        lift, t, student_t_two_sided_p(t, df), Interval(lift - half, lift + half, 1.0 - alpha)
    )


def sample_size_per_arm(settings: TestSettings, baseline: float) -> float:
    """Unrounded samples per arm for a two-sided test to detect the MDE at alpha and power.

    `baseline` is the champion's observed rate (Proportion) or the outcome's variance
    (Continuous). For a Proportion the challenger is assumed to be MDE better (in the
    metric's good direction); the null's standard deviation is the pooled one, as in the
    test itself, the alternative's the unpooled one. The far tail of the two-sided test is
    ignored (it adds nothing for any useful power).
    """
    z_alpha = normal_ppf(1.0 - settings.alpha / 2.0)
    z_power = normal_ppf(settings.power)
    mde = settings.mde
    if settings.metric_type is MetricType.CONTINUOUS:
        sd_null = sd_alt = math.sqrt(2.0 * baseline)
    else:
        p1 = baseline
        p2 = p1 + mde if settings.higher_is_better else p1 - mde
        if not 0.0 <= p2 <= 1.0:  # no room in the good direction: the bad one is the effect
            p2 = min(max(2.0 * p1 - p2, 0.0), 1.0)
        pooled = (p1 + p2) / 2.0
        sd_null = math.sqrt(2.0 * pooled * (1.0 - pooled))
        sd_alt = math.sqrt(p1 * (1.0 - p1) + p2 * (1.0 - p2))
    return (max(z_alpha * sd_null + z_power * sd_alt, 0.0) / mde) ** 2


def required_samples_per_arm(settings: TestSettings, baseline: float) -> int:
    """`sample_size_per_arm` rounded up (at least 1); the floating fuzz is not an extra sample."""
    return max(1, math.ceil(sample_size_per_arm(settings, baseline) - 1e-9))


# --- the always-valid sequential test ------------------------------------------------------


def msprt(settings: TestSettings, champ: ArmFigures, chall: ArmFigures) -> Comparison:
    """Mixture SPRT with a normal mixture N(0, tau^2) on the lift (Johari et al. 2017).

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 * lift^2 / (2 V (V + tau^2))) is a
    nonnegative martingale under the null, so by Ville's inequality 1 / Lambda is a p-value
    valid at every look at once; the caller keeps its running minimum. That is exact for
    normal outcomes of known variance; here V is estimated at each look, which the A/A
    simulations in the tests and `make bench-abtest` check. The interval is the
    always-valid (1 - alpha) confidence sequence from inverting the same test. `statistic`
    is log Lambda. V, the variance of the lift, is pooled for the p-value and unpooled for
    the interval (Proportion), as in the fixed-horizon z-test. Needs at least 1 outcome per
    arm (Proportion) or 2 (Continuous), as `decide_look` ensures.
    """
    lift = chall.mean - champ.mean
    tau2 = (settings.tau_per_mde * settings.mde) ** 2
    if settings.metric_type is MetricType.PROPORTION:
        pooled = ArmFigures(champ.n + chall.n, champ.sum + chall.sum)
        p = pooled.mean * (1.0 - pooled.mean)
        v_null = p * (1.0 / champ.n + 1.0 / chall.n)
    else:
        v_null = champ.variance(MetricType.CONTINUOUS) / champ.n
        v_null += chall.variance(MetricType.CONTINUOUS) / chall.n
    v_alt = (
        champ.variance(settings.metric_type) / champ.n
        + chall.variance(settings.metric_type) / chall.n
    )
    if v_null > 0:
        log_lambda = 0.5 * math.log(v_null / (v_null + tau2)) + tau2 * lift * lift / (
            2.0 * v_null * (v_null + tau2)
        )
    else:  # constant outcomes: no evidence of a difference unless the arms differ
        log_lambda = 0.0 if lift == 0 else math.inf
    p_value = min(1.0, math.exp(-log_lambda))
    if v_alt > 0:
        half = math.sqrt(
            2.0
            * v_alt
            * (v_alt + tau2)
            / tau2
            * (math.log(1.0 / settings.alpha) + 0.5 * math.log((v_alt + tau2) / v_alt))
        )
    else:
        half = 0.0
    return Comparison(
        lift, log_lambda, p_value, Interval(lift - half, lift + half, 1.0 - settings.alpha)
    )


# --- sample-ratio mismatch and the bandit --------------------------------------------------


def srm_p_value(n_champ: int, n_chall: int, expected_share: float) -> float:
    """p-value of the assignment counts given the challenger's expected share (0-1).

    The chi-square test with 1 degree of freedom is the square of a two-sided z-test of the
    challenger's count against its binomial expectation, so no chi-square CDF is needed.
    """
    total = n_champ + n_chall
    if total == 0:
        return 1.0
    expected = (total * (1.0 - expected_share), total * expected_share)
    chi2 = sum((o - e) ** 2 / e for o, e in zip((n_champ, n_chall), expected, strict=True))
    return math.erfc(math.sqrt(chi2 / 2.0))


def thompson_shares(
    settings: TestSettings,
    arms: Sequence[ArmFigures],
    *,
    min_share: float,
    draws: int,
    rng: Generator,
) -> list[float]:
    """Traffic share per arm: the posterior probability that it is the best, floored.

    Posteriors: Beta(1 + successes, 1 + failures) for a Proportion, Normal(mean, var / n)
    for a Continuous metric (arms with fewer than 2 outcomes have none yet: equal shares).
    Every arm keeps at least `min_share` (e.g. bandit.minTrafficPercent / 100) so none
    stops being observed. Deterministic for a seeded `rng`.
    """
    # numpy only here, so the tests and `maestro abtest analyze` run on the core dependencies.
    import numpy as np

    k = len(arms)
    if not 0.0 <= min_share <= 1.0 / k:
        raise ValueError(f"min_share must be within [0, 1/{k}], got {min_share}")
    if settings.metric_type is MetricType.PROPORTION:
        samples = np.stack([rng.beta(1.0 + a.sum, 1.0 + a.n - a.sum, size=draws) for a in arms])
    elif all(a.n >= 2 for a in arms):
        samples = np.stack(
            [
                rng.normal(a.mean, math.sqrt(a.variance(settings.metric_type) / a.n), size=draws)
                for a in arms
            ]
        )
    else:
        return [1.0 / k] * k
    best = samples.argmax(axis=0) if settings.higher_is_better else samples.argmin(axis=0)
    shares = [float(s) for s in np.bincount(best, minlength=k) / draws]
    return _apply_floor(shares, min_share)


def _apply_floor(shares: list[float], floor: float) -> list[float]:
    """Raise shares below `floor` to it, taking the mass from the others in proportion."""
    floored: set[int] = set()
    while True:
        free = 1.0 - floor * len(floored)
        rest = [i for i in range(len(shares)) if i not in floored]
        total = sum(shares[i] for i in rest)
        scaled = {i: free * shares[i] / total if total > 0 else free / len(rest) for i in rest}
        below = {i for i, s in scaled.items() if s < floor}
        if not below:
            return [floor if i in floored else scaled[i] for i in range(len(shares))]
        floored |= below


# --- one look ------------------------------------------------------------------------------


def decide_look(
    settings: TestSettings,
    champ: ArmFigures,
    chall: ArmFigures,
    *,
    previous_p: float | None = None,
    expected_share: float | None = None,
) -> LookResult:
    """Figures and decision at one look at the cumulative outcomes of both arms.

    Continue unless significant; when significant, PromoteChallenger if the challenger is
    better in the metric's good direction, else KeepChampion. A sequential test's p-value is
    the minimum of this look's and `previous_p` (the last look's reported p-value). A
    fixed-horizon test decides only once both arms have the required samples. With
    `expected_share` (the challenger's configured share of assignments) a sample-ratio
    mismatch blocks any decision.
    """
    proportion = settings.metric_type is MetricType.PROPORTION
    minimum = 1 if proportion else 2  # a sample variance needs two outcomes
    required = None
    if champ.n >= minimum:
        # The champion's figures are the baseline: they are what the challenger must beat.
        baseline = champ.mean if proportion else champ.variance(settings.metric_type)
        required = required_samples_per_arm(settings, baseline)
    if champ.n < minimum or chall.n < minimum:
        return LookResult(
            lift=chall.mean - champ.mean if champ.n and chall.n else None,
            p_value=previous_p,
            interval=None,
            required_samples=required,
            decision=LookDecision.CONTINUE,
            reason=f"each model needs at least {minimum} outcome(s) before any test",
        )
    if settings.sequential:
        comparison = msprt(settings, champ, chall)
        p = comparison.p_value if previous_p is None else min(previous_p, comparison.p_value)
    else:
        test = two_proportion_z if proportion else welch_t
        comparison = test(champ, chall, alpha=settings.alpha)
        p = comparison.p_value

    def result(decision: LookDecision, reason: str) -> LookResult:
        return LookResult(comparison.lift, p, comparison.interval, required, decision, reason)

    if expected_share is not None:
        srm = srm_p_value(champ.n, chall.n, expected_share)
        if srm < SRM_ALPHA:
            return result(
                LookDecision.CONTINUE,
                f"sample ratio mismatch: {champ.n} vs {chall.n} outcomes where the challenger"
                f" should have {expected_share:.0%} (p={srm:.2g} < {SRM_ALPHA}); no decision"
                " while the split is broken",
            )
    if not settings.sequential and required is not None and min(champ.n, chall.n) < required:
        return result(
            LookDecision.CONTINUE,
            f"the fixed-horizon test decides at {required} outcomes per model",
        )
    if p >= settings.alpha:
        return result(LookDecision.CONTINUE, f"not significant (p={p:.3g} >= {settings.alpha})")
    better = comparison.lift > 0 if settings.higher_is_better else comparison.lift < 0
    if better:
        return result(
            LookDecision.PROMOTE_CHALLENGER,
            f"the challenger is better by {comparison.lift:+.4g} (p={p:.3g})",
        )
    return result(
        LookDecision.KEEP_CHAMPION, f"the challenger is worse by {comparison.lift:+.4g} (p={p:.3g})"
    )
