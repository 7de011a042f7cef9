"""Evidently's drift scores computed on arrays (sorted values, counts or bin shares),
pure numpy with SciPy's distribution functions: KS p-value, normed Wasserstein distance,
chi-square and z-test p-values, PSI, Jensen-Shannon distance, and a histogram of sorted
values. monitoring/stattests.py decides which one a column gets and from what."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

KS_EXACT_MAX = 10_000  # scipy.stats.ks_2samp: exact distribution up to this sample size


def ks_pvalue(reference: NDArray[np.float64], current: NDArray[np.float64]) -> float:
    """Two-sided two-sample KS p-value (scipy.stats.ks_2samp, method auto) of sorted data."""
    n1, n2 = reference.size, current.size
    if max(n1, n2) <= KS_EXACT_MAX:
        from scipy.stats import ks_2samp

        return float(ks_2samp(reference, current).pvalue)
    from scipy.stats import kstwo

    data_all = np.concatenate((reference, current))
    cddiffs = np.searchsorted(reference, data_all, side="right") / n1
    cddiffs -= np.searchsorted(current, data_all, side="right") / n2
    min_s = float(np.clip(-cddiffs.min(), 0, 1))
    max_s = float(cddiffs.max())
    d = min_s if min_s > max_s else max_s
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(kstwo.sf(d, np.round(en)), 0, 1))


def wasserstein_normed(
    reference: NDArray[np.float64], current: NDArray[np.float64], reference_std: float
) -> float:
    """First Wasserstein distance of sorted data / max(std, 0.001), as Evidently normalises
    scipy.stats.wasserstein_distance. Computed in its quantile form, the integral over
    t in [0, 1] of |Q_ref(t) - Q_cur(t)|, on the merged grid of both sides' steps i/n1 and
    j/n2 (integers over their lcm): the same value as scipy's integral of |F_ref - F_cur|
    over x (to rounding, ~1e-15 relative), without its binary searches."""
    n1, n2 = reference.size, current.size
    common = math.gcd(n1, n2)
    step1, step2 = n2 // common, n1 // common  # 1/n1 and 1/n2 in units of 1/lcm
    lcm = n1 * step1
    starts = np.concatenate(
        (np.arange(n1, dtype=np.int64) * step1, np.arange(1, n2, dtype=np.int64) * step2)
    )
    starts.sort()
    lengths = np.diff(starts, append=lcm).astype(np.float64)
    gaps = reference[starts // step1]
    gaps -= current[starts // step2]
    np.abs(gaps, out=gaps)
    distance = float(np.vecdot(gaps, lengths)) / lcm
    return distance / max(reference_std, 0.001)


def chisquare_pvalue(ref_counts: NDArray[np.float64], cur_counts: NDArray[np.float64]) -> float:
    """scipy.stats.chisquare of current counts against reference counts scaled to them."""
    from scipy.special import chdtrc

    k_norm = cur_counts.sum() / ref_counts.sum()
    expected = ref_counts * k_norm
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = float(np.sum((cur_counts - expected) ** 2 / expected))
    return float(chdtrc(len(ref_counts) - 1, stat))


def z_pvalue(
    keys: NDArray[Any], ref_counts: NDArray[np.float64], cur_counts: NDArray[np.float64]
) -> float:
    """Evidently's two-proportion z-test: the share of values other than the smallest."""
    from scipy.special import ndtr

    if len(keys) == 1:  # one value, the same on both sides
        return 1.0
    n1, n2 = int(ref_counts.sum()), int(cur_counts.sum())
    p1 = float(n1 - int(ref_counts[0])) / n1
    p2 = float(n2 - int(cur_counts[0])) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - ndtr(np.abs(z))))


def histogram(ordered: NDArray[np.float64], edges: NDArray[np.float64]) -> NDArray[np.int64]:
    """np.histogram(values, edges)[0] of sorted values (the last bin includes its edge)."""
    cumulative = np.concatenate(
        (ordered.searchsorted(edges[:-1], "left"), ordered.searchsorted(edges[-1:], "right"))
    )
    return np.diff(cumulative).astype(np.int64)


def psi(ref_shares: NDArray[np.float64], cur_shares: NDArray[np.float64]) -> float:
    return float(np.sum((ref_shares - cur_shares) * np.log(ref_shares / cur_shares)))


def jensenshannon(ref_shares: NDArray[np.float64], cur_shares: NDArray[np.float64]) -> float:
    """scipy.spatial.distance.jensenshannon (natural log)."""
    from scipy.special import rel_entr

    p = ref_shares / np.sum(ref_shares)
    q = cur_shares / np.sum(cur_shares)
    m = (p + q) / 2.0
    js = np.sum(rel_entr(p, m)) + np.sum(rel_entr(q, m))
    return float(np.sqrt(js / 2.0))
