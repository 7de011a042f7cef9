"""`make bench-abtest`: the ABTest's sequential test against the fixed-horizon test.

Simulated Proportion streams (a conversion rate): champion at the baseline rate, challenger
at baseline + effect, for true effects of 0 (A/A), 1x and 2x the minimum detectable effect.
Every stream is checked after each 100 outcomes per model, up to 3x the fixed-horizon
sample size, with the operator's own `decide_look` (mSPRT, running-minimum p-value); a
stream stops at its first decision. The fixed-horizon test is simulated at exactly its
required samples per model, looked at once; the naive test is the same z-test checked at
every look of the sequential schedule ("peeking"). Nothing here is an estimate from
formulas: every figure counts simulated streams.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import time
from dataclasses import dataclass, replace

import numpy as np

from maestro.operators.abtest.statistics import (
    ArmFigures,
    LookDecision,
    TestSettings,
    decide_look,
    required_samples_per_arm,
    two_proportion_z,
)
from maestro.operators.api.abtest import MetricType
from tests.bench.report import table, write_section

BASELINE, MDE, ALPHA, POWER = 0.10, 0.02, 0.05, 0.8
STEP, HORIZON_FACTOR = 100, 3
TAUS = (0.5, 1.0, 2.0)  # tau / MDE, the mixing scale the default (1.0) is compared with


@dataclass(frozen=True)
class Streams:
    """Cumulative successes at each look, (streams, looks) per arm."""

    effect: float
    champion: np.ndarray
    challenger: np.ndarray


@dataclass(frozen=True)
class Outcome:
    """Per stream: samples per model at the first decision (inf if none), and which."""

    samples: np.ndarray
    promoted: np.ndarray
    kept: np.ndarray


def simulate(effect: float, streams: int, looks: int, rng: np.random.Generator) -> Streams:
    shape = (streams, looks)
    champion = rng.binomial(STEP, BASELINE, shape).cumsum(axis=1)
    challenger = rng.binomial(STEP, BASELINE + effect, shape).cumsum(axis=1)
    return Streams(effect, champion, challenger)


def sequential(settings: TestSettings, data: Streams) -> Outcome:
    count, looks = data.champion.shape
    samples = np.full(count, np.inf)
    promoted, kept = np.zeros(count, bool), np.zeros(count, bool)
    for s in range(count):
        p: float | None = None
        for k in range(looks):
            n = STEP * (k + 1)
            result = decide_look(
                settings,
                ArmFigures(n, int(data.champion[s, k])),
                ArmFigures(n, int(data.challenger[s, k])),
                previous_p=p,
            )
            p = result.p_value
            if result.decision is not LookDecision.CONTINUE:
                samples[s] = n
                promoted[s] = result.decision is LookDecision.PROMOTE_CHALLENGER
                kept[s] = result.decision is LookDecision.KEEP_CHAMPION
                break
    return Outcome(samples, promoted, kept)


def naive_peeking(data: Streams) -> float:
    """Share of streams where the fixed z-test is significant at any look."""
    count, looks = data.champion.shape
    hits = 0
    for s in range(count):
        for k in range(looks):
            n = STEP * (k + 1)
            champ = ArmFigures(n, int(data.champion[s, k]))
            chall = ArmFigures(n, int(data.challenger[s, k]))
            if two_proportion_z(champ, chall).p_value < ALPHA:
                hits += 1
                break
    return hits / count


def fixed_horizon(effect: float, n: int, streams: int, rng: np.random.Generator) -> float:
    """Share of streams the fixed-horizon z-test rejects at exactly its n (one look).

    The z-test itself rather than `decide_look(sequential=False)`: the operator re-derives
    the required n from the champion's observed rate at each look, so it may wait a little
    past this n; the textbook test at the planned n is the reference here.
    """
    champion = rng.binomial(n, BASELINE, streams)
    challenger = rng.binomial(n, BASELINE + effect, streams)
    rejected = [
        two_proportion_z(ArmFigures(n, int(a)), ArmFigures(n, int(b))).p_value < ALPHA
        for a, b in zip(champion, challenger, strict=True)
    ]
    return float(np.mean(rejected))


def quantile(samples: np.ndarray, q: float) -> float:
    # No interpolation: streams that never decided are +inf, and the answer is then "beyond".
    return float(np.quantile(samples, q, method="inverted_cdf"))


def fmt_n(value: float, horizon: int) -> str:
    return f"> {horizon:,}" if math.isinf(value) else f"{value:,.0f}"


def share(value: float, streams: int) -> str:
    """A rate with its Monte-Carlo standard error."""
    return f"{value:.3f} ± {math.sqrt(max(value * (1 - value), 1e-12) / streams):.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make bench-abtest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--streams", type=int, default=2000, help="streams per true effect")
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--no-write", action="store_true", help="print, leave the doc alone")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    settings = TestSettings(MetricType.PROPORTION, ALPHA, POWER, MDE, sequential=True)
    fixed_n = required_samples_per_arm(settings, BASELINE)
    looks = math.ceil(HORIZON_FACTOR * fixed_n / STEP)
    horizon = looks * STEP
    data = {m: simulate(m * MDE, args.streams, looks, rng) for m in (0, 1, 2)}
    outcomes = {
        (tau, m): sequential(replace(settings, tau_per_mde=tau), data[m])
        for tau in TAUS
        for m in (0, 1, 2)
    }
    fixed = {m: fixed_horizon(m * MDE, fixed_n, args.streams, rng) for m in (0, 1, 2)}
    naive = naive_peeking(data[0])
    seconds = time.perf_counter() - started

    main_rows = []
    for m, label in ((0, "0 (A/A)"), (1, "1x MDE (+0.02)"), (2, "2x MDE (+0.04)")):
        o = outcomes[(1.0, m)]
        decided = o.promoted.mean() if m else (o.promoted | o.kept).mean()
        by_fixed_n = (o.samples <= fixed_n) & (o.promoted if m else (o.promoted | o.kept))
        main_rows.append(
            [
                label,
                share(decided, args.streams),
                share(by_fixed_n.mean(), args.streams),
                fmt_n(quantile(o.samples, 0.5), horizon),
                fmt_n(quantile(o.samples, 0.9), horizon),
                f"{quantile(o.samples, 0.5) / fixed_n:.2f}" if m else "-",
                str(int(o.kept.sum())) if m else "-",
                share(fixed[m], args.streams),
            ]
        )
    tau_rows = []
    for tau in TAUS:
        aa, one, two = (outcomes[(tau, m)] for m in (0, 1, 2))
        tau_rows.append(
            [
                f"{tau:g} x MDE" + (" (default)" if tau == 1.0 else ""),
                share((aa.promoted | aa.kept).mean(), args.streams),
                share(one.promoted.mean(), args.streams),
                f"{quantile(one.samples, 0.5) / fixed_n:.2f}",
                f"{quantile(two.samples, 0.5) / fixed_n:.2f}",
            ]
        )
    default = {m: outcomes[(1.0, m)] for m in (0, 1, 2)}
    # Samples per model by which POWER of the 1x-MDE streams were promoted.
    power_n = quantile(np.where(default[1].promoted, default[1].samples, np.inf), POWER)
    by_fixed_n = {
        m: float((default[m].promoted & (default[m].samples <= fixed_n)).mean()) for m in (1, 2)
    }
    ratio = quantile(default[2].samples, 0.5) / fixed_n
    power = float(default[1].promoted.mean())
    fpr = float((default[0].promoted | default[0].kept).mean())
    mc = math.sqrt(ALPHA * (1 - ALPHA) / args.streams)

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    body = f"""\
## A/B test statistics: sequential vs fixed horizon (`make bench-abtest`)

Simulated {dt.date.today().isoformat()}, {args.streams:,} streams per true effect (seed
{args.seed}, {seconds:.0f} s). Proportion metric: champion rate {BASELINE}, minimum detectable
effect {MDE} (absolute), alpha {ALPHA}, power {POWER}, two-sided. The fixed-horizon test
needs **{fixed_n:,} samples per model** (`required_samples_per_arm`). The sequential test
(mSPRT, the ABTest default) is checked every {STEP} samples per model up to {horizon:,}
(3x), with the operator's `decide_look`; a stream stops at its first decision. The
fixed-horizon test looks once at {fixed_n:,}; the naive test is that z-test checked at
every look of the sequential schedule. Rates are ± one Monte-Carlo standard error.

{
        table(
            [
                "true effect",
                "sequential: decided (power; FPR for A/A)",
                "decided by the fixed n",
                "median samples to decision",
                "p90",
                "median / fixed n",
                "wrong-way decisions",
                "fixed-horizon z-test at its n: rejects",
            ],
            main_rows,
        )
    }

False positives under continuous checking (A/A, {looks} looks): sequential
{share(fpr, args.streams)}; naive z-test checked at every look {share(naive, args.streams)}
(alpha is {ALPHA}).

Goals:

- median samples to decision at 2x MDE at most half the fixed-horizon n:
  {met(ratio <= 0.5)} ({ratio:.2f} of it);
- power at 1x MDE at least {POWER}: {met(power >= POWER)} ({power:.3f} within the 3x horizon);
- false-positive rate under continuous checking at most alpha plus two Monte-Carlo
  standard errors: {met(fpr <= ALPHA + 2 * mc)} ({fpr:.3f} <= {ALPHA + 2 * mc:.3f}).

The price of being allowed to look at any time is paid near the MDE: by the fixed-horizon
n the sequential test has decided {by_fixed_n[1]:.0%} of the 1x-MDE streams, where the
fixed-horizon test rejects {fixed[1]:.0%} of them at that n; it reaches the requested power
at {power_n:,.0f} samples per model ({power_n / fixed_n:.2f}x the fixed n). Effects larger than
the MDE it stops early, where the fixed test still waits for all {fixed_n:,}: at 2x MDE after
a median of {quantile(default[2].samples, 0.5):,.0f}.

The mSPRT mixes over lifts with a normal prior of scale tau, and tau decides which
effects it is quickest on. Below, the same streams under three values of tau; the default,
tau = MDE (`TAU_PER_MDE = 1.0`), is the effect the test is sized for, and with it the goals
above hold, so it was not tuned.

{
        table(
            [
                "tau",
                "FPR (A/A)",
                "power at 1x MDE",
                "median / fixed n at 1x MDE",
                "median / fixed n at 2x MDE",
            ],
            tau_rows,
        )
    }
"""
    if not args.no_write:
        write_section("bench-abtest", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
