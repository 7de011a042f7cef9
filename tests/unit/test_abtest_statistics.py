"""ABTest statistics against SciPy and statsmodels (to 1e-6), and an A/A simulation of the
sequential test checked at every look."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower, normal_sample_size_one_tail
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportions_ztest,
    samplesize_proportions_2indep_onetail,
)

from maestro.operators.abtest import distributions as dist
from maestro.operators.abtest.statistics import (
    ArmFigures,
    LookDecision,
    TestSettings,
    _apply_floor,
    decide_look,
    msprt,
    required_samples_per_arm,
    sample_size_per_arm,
    srm_p_value,
    thompson_shares,
    two_proportion_z,
    welch_t,
)
from maestro.operators.api.abtest import ABTestSpec, MetricType

pytestmark = pytest.mark.unit

TOL = 1e-6
PROPORTION = TestSettings(MetricType.PROPORTION, alpha=0.05, power=0.8, mde=0.02)
CONTINUOUS = TestSettings(MetricType.CONTINUOUS, alpha=0.05, power=0.8, mde=0.5)


def figures(values: np.ndarray) -> ArmFigures:
    return ArmFigures(len(values), float(values.sum()), float((values**2).sum()))


# --- distributions -------------------------------------------------------------------------

DFS = [1, 2, 2.5, 3.7, 10, 29.3, 100, 1234.5, 2e5, 5e6, 3e7]


@pytest.mark.parametrize("df", DFS, ids=str)
def test_student_t_matches_scipy(df: float) -> None:
    for t in (0.0, 0.01, 0.5, -1.0, 1.96, 2.5, -4.0, 8.0, 30.0):
        assert dist.student_t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), abs=TOL)
        expected = 2 * stats.t.sf(abs(t), df)
        assert dist.student_t_two_sided_p(t, df) == pytest.approx(expected, abs=TOL)
    for q in (1e-6, 0.025, 0.5, 0.6, 0.9, 0.975, 0.995, 0.9999):
        expected = stats.t.ppf(q, df)
        assert dist.student_t_ppf(q, df) == pytest.approx(expected, abs=TOL * max(1, abs(expected)))


@pytest.mark.parametrize(
    ("a", "b", "x"),
    [(0.5, 0.5, 0.3), (2, 3, 0.4), (10, 0.5, 0.99), (100, 200, 0.33), (1e4, 0.5, 0.999)],
    ids=str,
)
def test_regularized_beta_matches_scipy(a: float, b: float, x: float) -> None:
    assert dist.regularized_beta(a, b, x) == pytest.approx(stats.beta.cdf(x, a, b), abs=TOL)


def test_normal_matches_scipy() -> None:
    for x in (-9.0, -3.0, -0.5, 0.0, 1.0, 4.0):
        assert dist.normal_cdf(x) == pytest.approx(stats.norm.cdf(x), rel=TOL, abs=1e-300)
    for q in (1e-9, 0.025, 0.5, 0.8, 0.975):
        assert dist.normal_ppf(q) == pytest.approx(stats.norm.ppf(q), abs=TOL)


# --- fixed-horizon tests -------------------------------------------------------------------

PROPORTION_CASES = [
    ((1000, 100), (1100, 135)),
    ((5000, 520), (5000, 480)),
    ((40, 3), (37, 9)),
    ((20000, 2000), (19500, 2050)),
    ((300, 0), (300, 4)),
]


@pytest.mark.parametrize(("champ", "chall"), PROPORTION_CASES, ids=str)
@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_two_proportion_z_matches_statsmodels(
    champ: tuple[int, int], chall: tuple[int, int], alpha: float
) -> None:
    got = two_proportion_z(ArmFigures(*champ), ArmFigures(*chall), alpha=alpha)
    z, p = proportions_ztest([chall[1], champ[1]], [chall[0], champ[0]])
    lower, upper = confint_proportions_2indep(
        chall[1], chall[0], champ[1], champ[0], method="wald", compare="diff", alpha=alpha
    )
    assert got.lift == pytest.approx(chall[1] / chall[0] - champ[1] / champ[0], abs=TOL)
    assert got.statistic == pytest.approx(z, abs=TOL)
    assert got.p_value == pytest.approx(p, abs=TOL)
    assert (got.interval.lower, got.interval.upper) == pytest.approx((lower, upper), abs=TOL)
    assert got.interval.level == 1 - alpha


@pytest.mark.parametrize(
    ("n1", "n2", "mu", "sd1", "sd2"),
    [(30, 40, 0.3, 1.0, 2.0), (500, 450, -0.1, 5.0, 4.0), (8, 5, 1.0, 0.5, 3.0)],
    ids=str,
)
def test_welch_matches_scipy(n1: int, n2: int, mu: float, sd1: float, sd2: float) -> None:
    rng = np.random.default_rng(n1)
    champ_data, chall_data = rng.normal(0, sd1, n1), rng.normal(mu, sd2, n2)
    champ, chall = figures(champ_data), figures(chall_data)
    got = welch_t(champ, chall, alpha=0.05)
    raw = stats.ttest_ind(chall_data, champ_data, equal_var=False)
    summary = stats.ttest_ind_from_stats(
        *(chall_data.mean(), chall_data.std(ddof=1), n2),
        *(champ_data.mean(), champ_data.std(ddof=1), n1),
        equal_var=False,
    )
    interval = raw.confidence_interval(0.95)
    assert got.statistic == pytest.approx(summary.statistic, abs=TOL)
    assert got.p_value == pytest.approx(summary.pvalue, abs=TOL)
    assert got.p_value == pytest.approx(raw.pvalue, abs=TOL)
    assert (got.interval.lower, got.interval.upper) == pytest.approx(
        (interval.low, interval.high), abs=TOL
    )


def test_welch_with_constant_outcomes() -> None:
    same = welch_t(ArmFigures(5, 10.0, 20.0), ArmFigures(5, 10.0, 20.0))
    apart = welch_t(ArmFigures(5, 10.0, 20.0), ArmFigures(5, 15.0, 45.0))
    assert (same.p_value, apart.p_value) == (1.0, 0.0)


@pytest.mark.parametrize(
    ("baseline", "mde", "higher", "alpha", "power"),
    [
        (0.10, 0.02, True, 0.05, 0.8),
        (0.10, 0.02, False, 0.05, 0.8),
        (0.50, 0.05, True, 0.01, 0.9),
        (0.03, 0.005, True, 0.1, 0.8),
        (0.99, 0.02, True, 0.05, 0.8),  # no room above: the effect is measured downwards
    ],
    ids=str,
)
def test_proportion_sample_size_matches_statsmodels(
    baseline: float, mde: float, higher: bool, alpha: float, power: float
) -> None:
    settings = TestSettings(MetricType.PROPORTION, alpha, power, mde, higher)
    diff = mde if higher and baseline + mde <= 1 else -mde
    expected = samplesize_proportions_2indep_onetail(diff, baseline, power, alpha=alpha)
    assert sample_size_per_arm(settings, baseline) == pytest.approx(expected, rel=TOL)
    assert required_samples_per_arm(settings, baseline) == math.ceil(expected)


@pytest.mark.parametrize(
    ("variance", "mde", "alpha", "power"),
    [(4.0, 0.5, 0.05, 0.8), (1.0, 0.1, 0.01, 0.95), (250.0, 3.0, 0.1, 0.8)],
    ids=str,
)
def test_continuous_sample_size_matches_statsmodels(
    variance: float, mde: float, alpha: float, power: float
) -> None:
    settings = TestSettings(MetricType.CONTINUOUS, alpha, power, mde)
    got = sample_size_per_arm(settings, variance)
    exact = normal_sample_size_one_tail(mde, power, alpha / 2, std_null=math.sqrt(2 * variance))
    # One-sided at alpha/2 is the two-sided test without its far tail, as documented.
    solved = NormalIndPower().solve_power(
        effect_size=mde / math.sqrt(variance), alpha=alpha / 2, power=power, alternative="larger"
    )
    assert got == pytest.approx(exact, rel=TOL)
    assert got == pytest.approx(solved, rel=TOL)


@pytest.mark.parametrize(
    ("champ", "chall", "share"),
    [(5000, 5000, 0.5), (5100, 4900, 0.5), (9100, 900, 0.1), (800, 230, 0.2), (0, 1, 0.5)],
    ids=str,
)
def test_srm_matches_chisquare(champ: int, chall: int, share: float) -> None:
    total = champ + chall
    expected = stats.chisquare([champ, chall], [total * (1 - share), total * share]).pvalue
    assert srm_p_value(champ, chall, share) == pytest.approx(expected, abs=TOL)
    assert srm_p_value(0, 0, share) == 1.0


# --- the sequential test -------------------------------------------------------------------


def test_msprt_p_value_and_interval_agree() -> None:
    """0 leaves the always-valid interval exactly when p falls below alpha (one variance)."""
    champ = ArmFigures(400, 400 * 10.0, 400 * (10.0**2 + 4.0))
    for shift in np.linspace(0.0, 1.5, 31):
        chall = ArmFigures(400, 400 * (10.0 + shift), 400 * ((10.0 + shift) ** 2 + 4.0))
        got = msprt(CONTINUOUS, champ, chall)
        outside = not got.interval.lower <= 0.0 <= got.interval.upper
        assert (got.p_value < CONTINUOUS.alpha) == outside, shift


def test_msprt_interval_is_wider_than_the_fixed_one() -> None:
    champ, chall = ArmFigures(5000, 500), ArmFigures(5000, 560)
    fixed, sequential = two_proportion_z(champ, chall), msprt(PROPORTION, champ, chall)
    assert sequential.lift == fixed.lift
    assert sequential.interval.lower < fixed.interval.lower
    assert sequential.interval.upper > fixed.interval.upper
    assert sequential.p_value > fixed.p_value


def test_a_a_sequential_stays_within_alpha_where_the_naive_test_does_not() -> None:
    """2,000 A/A streams checked at 50 looks: the sequential test's false-positive rate stays
    at or below alpha (plus two Monte-Carlo standard errors); a fixed z-test checked at every
    look (peeking) rejects far more often."""
    streams, looks, step, rate = 2000, 50, 200, 0.10
    rng = np.random.default_rng(20240601)
    champ = rng.binomial(step, rate, (streams, looks)).cumsum(axis=1)
    chall = rng.binomial(step, rate, (streams, looks)).cumsum(axis=1)
    fixed = TestSettings(MetricType.PROPORTION, mde=0.02, sequential=False)
    sequential_hits = naive_hits = 0
    for s in range(streams):
        p: float | None = None
        sequential_hit = naive_hit = False
        for k in range(looks):
            n = step * (k + 1)
            a, b = ArmFigures(n, int(champ[s, k])), ArmFigures(n, int(chall[s, k]))
            result = decide_look(PROPORTION, a, b, previous_p=p)
            p = result.p_value
            sequential_hit |= result.decision is not LookDecision.CONTINUE
            naive_hit |= two_proportion_z(a, b).p_value < fixed.alpha
            if sequential_hit and naive_hit:
                break
        sequential_hits += sequential_hit
        naive_hits += naive_hit
    alpha = PROPORTION.alpha
    standard_error = math.sqrt(alpha * (1 - alpha) / streams)
    print(f"A/A: sequential {sequential_hits / streams:.4f}, naive {naive_hits / streams:.4f}")
    assert sequential_hits / streams <= alpha + 2 * standard_error
    assert naive_hits / streams > 2 * alpha


def test_a_a_sequential_continuous() -> None:
    streams, looks, step = 2000, 30, 50
    rng = np.random.default_rng(7)
    data = rng.exponential(3.0, (2, streams, looks, step))  # skewed, like revenue
    sums, squares = data.sum(axis=3).cumsum(axis=2), (data**2).sum(axis=3).cumsum(axis=2)
    hits = 0
    for s in range(streams):
        p: float | None = None
        for k in range(looks):
            arms = [ArmFigures(step * (k + 1), sums[i, s, k], squares[i, s, k]) for i in (0, 1)]
            result = decide_look(CONTINUOUS, *arms, previous_p=p)
            p = result.p_value
            if result.decision is not LookDecision.CONTINUE:
                hits += 1
                break
    alpha = CONTINUOUS.alpha
    print(f"A/A continuous: sequential {hits / streams:.4f}")
    assert hits / streams <= alpha + 2 * math.sqrt(alpha * (1 - alpha) / streams)


# --- decisions -----------------------------------------------------------------------------

FIXED = TestSettings(MetricType.PROPORTION, mde=0.02, sequential=False)
LOWER = TestSettings(MetricType.PROPORTION, mde=0.02, higher_is_better=False)

DECISIONS = [
    ("sequential, clearly better", PROPORTION, (4000, 400), (4000, 560), {}, "PromoteChallenger"),
    ("sequential, clearly worse", PROPORTION, (4000, 560), (4000, 400), {}, "KeepChampion"),
    ("sequential, no difference", PROPORTION, (4000, 400), (4000, 410), {}, "Continue"),
    ("lower is better flips it", LOWER, (4000, 560), (4000, 400), {}, "PromoteChallenger"),
    ("fixed waits for its samples", FIXED, (1000, 100), (1000, 200), {}, "Continue"),
    ("fixed decides at its samples", FIXED, (4000, 400), (4000, 470), {}, "PromoteChallenger"),
    ("fixed, not significant", FIXED, (4000, 400), (4000, 420), {}, "Continue"),
    ("a broken split blocks", PROPORTION, (4000, 400), (3000, 560), {"expected_share": 0.5},
     "Continue"),
    ("a sound split does not", PROPORTION, (4000, 400), (4000, 560), {"expected_share": 0.5},
     "PromoteChallenger"),
    ("an earlier low p counts", PROPORTION, (4000, 400), (4000, 410), {"previous_p": 0.01},
     "PromoteChallenger"),
    ("no outcomes yet", PROPORTION, (0, 0), (0, 0), {}, "Continue"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "champ", "chall", "kwargs", "decision"),
    [case[1:] for case in DECISIONS],
    ids=[case[0] for case in DECISIONS],
)
def test_decide_look(
    settings: TestSettings,
    champ: tuple[int, int],
    chall: tuple[int, int],
    kwargs: dict[str, float],
    decision: str,
) -> None:
    result = decide_look(settings, ArmFigures(*champ), ArmFigures(*chall), **kwargs)
    assert result.decision == decision, result.reason
    if champ[0]:
        assert result.required_samples == required_samples_per_arm(settings, champ[1] / champ[0])


def test_decide_look_reports_why() -> None:
    broken = decide_look(
        PROPORTION, ArmFigures(4000, 400), ArmFigures(3000, 560), expected_share=0.5
    )
    waiting = decide_look(FIXED, ArmFigures(1000, 100), ArmFigures(1000, 200))
    assert "sample ratio mismatch" in broken.reason
    assert f"at {waiting.required_samples} outcomes" in waiting.reason


def test_settings_from_spec() -> None:
    spec = ABTestSpec.model_validate(
        {"deployment": "d", "challenger": {"model": {"uri": "models:/m/2"}}, "metric": "m",
         "metricType": "Continuous", "minimumDetectableEffect": 0.7, "sequential": False}
    )  # fmt: skip
    assert TestSettings.from_spec(spec) == TestSettings(
        MetricType.CONTINUOUS, 0.05, 0.8, 0.7, higher_is_better=True, sequential=False
    )


# --- the bandit ----------------------------------------------------------------------------


def test_thompson_is_deterministic_and_favours_the_better_arm() -> None:
    arms = [ArmFigures(1000, 100), ArmFigures(1000, 130)]

    def shares(seed: int, settings: TestSettings = PROPORTION) -> list[float]:
        rng = np.random.default_rng(seed)
        return thompson_shares(settings, arms, min_share=0.05, draws=10_000, rng=rng)

    assert shares(1) == shares(1)
    assert shares(1)[1] > 0.9
    assert sum(shares(1)) == pytest.approx(1.0)
    assert shares(1, LOWER) == pytest.approx([0.95, 0.05])  # the floor holds the loser


def test_thompson_continuous() -> None:
    arms = [ArmFigures(50, 50 * 5.0, 50 * 26.0), ArmFigures(50, 50 * 5.1, 50 * 27.01)]
    got = thompson_shares(
        CONTINUOUS, arms, min_share=0.1, draws=20_000, rng=np.random.default_rng(3)
    )
    assert 0.5 < got[1] < 0.9
    few = [ArmFigures(1, 5.0, 25.0), ArmFigures(0, 0.0)]
    rng = np.random.default_rng(3)
    assert thompson_shares(CONTINUOUS, few, min_share=0.1, draws=10, rng=rng) == [0.5, 0.5]


@pytest.mark.parametrize(
    ("shares", "floor", "expected"),
    [
        ([0.5, 0.5], 0.05, [0.5, 0.5]),
        ([1.0, 0.0], 0.05, [0.95, 0.05]),
        ([0.0, 0.0], 0.1, [0.5, 0.5]),
        ([0.9, 0.08, 0.02], 0.05, [0.95 * 0.9 / 0.98, 0.95 * 0.08 / 0.98, 0.05]),
        ([0.97, 0.02, 0.01], 0.1, [0.8, 0.1, 0.1]),
    ],
    ids=str,
)
def test_apply_floor(shares: list[float], floor: float, expected: list[float]) -> None:
    assert _apply_floor(shares, floor) == pytest.approx(expected)


def test_thompson_refuses_an_impossible_floor() -> None:
    with pytest.raises(ValueError, match="min_share"):
        thompson_shares(
            PROPORTION, [ArmFigures(1, 1)] * 3, min_share=0.4, draws=1, rng=np.random.default_rng()
        )
