"""Per-column drift tests that reproduce Evidently's (0.7, `evidently.legacy.calculations.
stattests`) scores and verdicts from statistics of the reference computed once.

Two steps: `reference_stats(column)` keeps what any later comparison needs (the non-null,
finite values sorted as float64 for numeric columns, the category counts otherwise, the
count, the standard deviation, the dtype), and `evaluate(stats, current, test, threshold)`
compares a current column with them. Nothing here reads or writes files. All work is
vectorised numpy on sorted arrays; SciPy supplies only the distribution functions (and the
exact two-sample KS distribution for samples of at most 10,000, as scipy.stats.ks_2samp
itself, which Evidently calls). The scores themselves, on arrays, are in
monitoring/scores.py; this module types columns, keeps their statistics and applies
Evidently's rules of which test, which threshold and which verdict. (It stays one
module of about 440 lines: the statistics kept and the rules that read them change
together, and splitting them would put each rule's two halves in two files.)

Evidently's rules reproduced here:
  * column type from the *current* column (`evidently.core.datasets.infer_column_type`):
    float -> numerical; int -> categorical with <= 10 distinct values, else numerical;
    strings -> text when distinct > half the non-null count, else categorical; bool and
    category -> categorical; datetime -> datetime.
  * NaN and +-inf dropped on both sides before testing.
  * `auto`: reference (non-null) of <= 1000 values: numerical -> ks (p <= 0.05), or with
    <= 5 distinct values over both sides chisquare (> 2) / z (<= 2) (p < 0.05); categorical
    -> chisquare / z (<= 2 distinct). Larger reference: numerical -> wasserstein normed by
    the reference std (>= 0.1), or jensenshannon with <= 5 distinct values; categorical ->
    jensenshannon (>= 0.1).
  * wasserstein: scipy's distance / max(np.std(reference), 0.001), computed here in its
    quantile form (equal to scipy's to ~1e-15 relative, without binary searches).
  * psi and jensenshannon bin a numerical column whose reference has > 20 distinct values
    on Sturges edges of reference *and* current together (np.histogram_bin_edges), other
    columns on the categories of both; psi replaces empty bins by a small share.
Where Evidently has no equivalent, the choices are: text columns (Evidently trains a
domain classifier) are tested as categorical; datetime columns as numerical (epoch ns);
any other dtype as categorical on its string form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from maestro.monitoring.column_types import ColumnType, infer_column_type
from maestro.monitoring.contract import ColumnDrift
from maestro.monitoring.errors import (
    ALL_NULL_COLUMN,
    TEST_NOT_APPLICABLE,
    UNSUPPORTED_TEST,
    DriftInputError,
)
from maestro.monitoring.scores import (
    chisquare_pvalue,
    histogram,
    jensenshannon,
    ks_pvalue,
    psi,
    wasserstein_normed,
    z_pvalue,
)

AUTO = "auto"
KS, PSI, CHISQUARE, WASSERSTEIN, JENSENSHANNON, Z = (
    "ks",
    "psi",
    "chisquare",
    "wasserstein",
    "jensenshannon",
    "z",
)
# What `--stat-test` accepts; z is chosen only by `auto` (binary columns of small data).
STAT_TESTS = (AUTO, KS, PSI, CHISQUARE, WASSERSTEIN, JENSENSHANNON)
DEFAULT_THRESHOLDS: dict[str, float] = {
    KS: 0.05,
    CHISQUARE: 0.05,
    Z: 0.05,
    PSI: 0.1,
    WASSERSTEIN: 0.1,
    JENSENSHANNON: 0.1,
}
# Evidently's names of its tests (its reports and snapshots show these).
EVIDENTLY_DISPLAY_NAMES: dict[str, str] = {
    KS: "K-S p_value",
    CHISQUARE: "chi-square p_value",
    Z: "Z-test p_value",
    PSI: "PSI",
    WASSERSTEIN: "Wasserstein distance (normed)",
    JENSENSHANNON: "Jensen-Shannon distance",
}

# DataFrame.attrs key: columns read as categories that were strings in the file.
STRING_COLUMNS = "maestro.string_columns"
SMALL_REFERENCE = 1000  # auto: p-value tests up to here, distances above
FEW_VALUES = 5  # auto: numerical columns with this many values are binned
BINNED_DISTINCT = 20  # psi/jensenshannon: numerical reference above this -> histogram
PSI_JS_BINS = 30  # Evidently's n_bins argument (unused by its Sturges edges)

Kind = Literal["int", "float", "bool", "datetime", "string"]
NUMERIC_KINDS: tuple[Kind, ...] = ("int", "float", "bool", "datetime")


def _tested_as(column_type: ColumnType) -> ColumnType:
    """The type whose tests run (see the module docstring for what Evidently lacks)."""
    if column_type in (ColumnType.NUMERICAL, ColumnType.DATETIME):
        return ColumnType.NUMERICAL
    return ColumnType.CATEGORICAL


@dataclass(frozen=True, eq=False)
class ColumnStats:
    """What the tests need of one column: numeric columns keep their sorted non-null finite
    values (float64), others their sorted distinct values (as str) with counts."""

    kind: Kind
    rows: int  # all rows, nulls included
    n: int  # non-null, finite values
    nunique: int
    numeric_dtype: bool  # pandas.api.types.is_numeric_dtype of the column
    integer_dtype: bool  # np.histogram_bin_edges treats integer data differently
    values: NDArray[np.float64] | None = None
    categories: NDArray[np.str_] | None = None
    counts: NDArray[np.int64] | None = None
    std: float | None = None  # np.std of the cleaned column (Evidently's wasserstein norm)

    @property
    def numeric(self) -> bool:
        return self.values is not None

    def value_counts(self) -> tuple[NDArray[Any], NDArray[np.int64]]:
        """Sorted distinct values and their counts."""
        if self.values is not None:
            return _run_lengths(self.values)
        assert self.categories is not None and self.counts is not None
        return self.categories, self.counts


@dataclass(frozen=True, eq=False)
class ReferenceStats(ColumnStats):
    name: str = ""


def _run_lengths(ordered: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    if ordered.size == 0:
        return ordered, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    counts = np.diff(np.append(starts, ordered.size)).astype(np.int64)
    return ordered[starts], counts


def _kind(dtype: Any) -> Kind:
    if pd.api.types.is_bool_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_integer_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if isinstance(dtype, pd.CategoricalDtype) and pd.api.types.is_numeric_dtype(
        dtype.categories.dtype
    ):
        return "float"
    return "string"


def column_stats(column: pd.Series, *, with_std: bool = False) -> ColumnStats:
    """The statistics of one column (NaN and +-inf dropped, as Evidently does)."""
    return _stats(column, with_std=with_std, name=None)


def reference_stats(column: pd.Series, name: str | None = None) -> ReferenceStats:
    """The statistics of a reference column, enough for every test against any current."""
    stats = _stats(column, with_std=True, name=str(column.name) if name is None else name)
    assert isinstance(stats, ReferenceStats)
    return stats


def _stats(column: pd.Series, *, with_std: bool, name: str | None) -> ColumnStats:
    dtype = column.dtype
    kind = _kind(dtype)
    fields: dict[str, Any] = {
        "kind": kind,
        "rows": len(column),
        "numeric_dtype": bool(pd.api.types.is_numeric_dtype(dtype)),
        "integer_dtype": kind == "int" and not isinstance(dtype, pd.CategoricalDtype),
    }
    if name is not None:
        fields["name"] = name
    if kind in NUMERIC_KINDS:
        if kind == "datetime":
            raw = column.to_numpy(dtype="datetime64[ns]")
            present = ~np.isnat(raw)
            values = raw.view(np.int64)[present].astype(np.float64)
            finite = present
        else:
            floats = column.to_numpy(dtype=np.float64, na_value=np.nan)
            finite = np.isfinite(floats)
            values = floats[finite]
        values.sort()
        distinct = int(np.count_nonzero(values[1:] != values[:-1])) + 1 if values.size else 0
        fields.update(values=values, n=int(values.size), nunique=distinct)
        if with_std and values.size:
            fields["std"] = _reference_std(column, finite, values)
    else:
        categories, counts = _string_counts(column)
        fields.update(
            categories=categories, counts=counts, n=int(counts.sum()), nunique=len(categories)
        )
    return (ReferenceStats if name is not None else ColumnStats)(**fields)


def _reference_std(column: pd.Series, finite: NDArray[np.bool_], values: Any) -> float:
    """np.std of the cleaned column in its row order and dtype, as Evidently computes it."""
    cleaned = column[finite] if not bool(finite.all()) else column
    try:
        return float(np.std(cleaned))
    except TypeError:  # bool or datetime columns: pandas refuses their std
        return float(np.std(values))


def _string_counts(column: pd.Series) -> tuple[NDArray[np.str_], NDArray[np.int64]]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = np.asarray(column.cat.codes)
        counts = np.bincount(codes[codes >= 0], minlength=len(column.cat.categories))
        keys = np.asarray(column.cat.categories.astype(str), dtype=np.str_)
        used = counts > 0
        keys, counts = keys[used], counts[used]
    else:
        if column.dtype == object:
            column = column.replace([-np.inf, np.inf], np.nan)
        counted = column.value_counts(dropna=True, sort=False)
        keys = np.asarray(counted.index.astype(str), dtype=np.str_)
        counts = counted.to_numpy(dtype=np.int64)
    # Distinct values whose string forms collide (1 and "1") are merged.
    unique, inverse = np.unique(keys, return_inverse=True)
    merged = np.bincount(inverse.ravel(), weights=counts, minlength=len(unique))
    return unique, merged.astype(np.int64)


def resolve_test(
    reference: ColumnStats, current: ColumnStats, column_type: ColumnType, test: str
) -> str:
    """The test `auto` stands for (Evidently's `_get_default_stattest`), or `test` itself."""
    if test != AUTO:
        return test
    tested = _tested_as(column_type)
    few = FEW_VALUES if tested is ColumnType.NUMERICAL else 2
    n_values = _union_nunique(reference, current, limit=few)
    if reference.n <= SMALL_REFERENCE:
        if tested is ColumnType.NUMERICAL and n_values > FEW_VALUES:
            return KS
        return CHISQUARE if n_values > 2 else Z
    if tested is ColumnType.NUMERICAL and n_values > FEW_VALUES:
        return WASSERSTEIN
    return JENSENSHANNON


def _union_nunique(reference: ColumnStats, current: ColumnStats, limit: int) -> int:
    """Distinct values over both sides (exact up to `limit`, a larger number above it)."""
    if reference.nunique > limit or current.nunique > limit:
        return max(reference.nunique, current.nunique)
    ref_keys, _ = reference.value_counts()
    cur_keys, _ = current.value_counts()
    return len(_union_keys(ref_keys, cur_keys))


def _union_keys(a: NDArray[Any], b: NDArray[Any]) -> NDArray[Any]:
    if (a.dtype.kind == "f") == (b.dtype.kind == "f"):
        return np.union1d(a, b)
    # A number never equals a string (as in Python's sets): the keys are disjoint.
    return np.concatenate((a.astype(object), b.astype(object)))


def _aligned_counts(
    reference: ColumnStats, current: ColumnStats
) -> tuple[NDArray[Any], NDArray[np.float64], NDArray[np.float64]]:
    """The union of both sides' values (sorted) and each side's count of each."""
    ref_keys, ref_counts = reference.value_counts()
    cur_keys, cur_counts = current.value_counts()
    if (ref_keys.dtype.kind == "f") != (cur_keys.dtype.kind == "f"):
        keys = _union_keys(ref_keys, cur_keys)
        ref_all = np.concatenate((ref_counts, np.zeros(len(cur_keys)))).astype(np.float64)
        cur_all = np.concatenate((np.zeros(len(ref_keys)), cur_counts)).astype(np.float64)
        return keys, ref_all, cur_all
    keys = np.union1d(ref_keys, cur_keys)
    ref_all = np.zeros(len(keys), dtype=np.float64)
    cur_all = np.zeros(len(keys), dtype=np.float64)
    ref_all[np.searchsorted(keys, ref_keys)] = ref_counts
    cur_all[np.searchsorted(keys, cur_keys)] = cur_counts
    return keys, ref_all, cur_all


def binned_shares(
    reference: ColumnStats, current: ColumnStats, column_type: ColumnType, fill_zeroes: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Evidently's get_binned_data: shares per bin of each side."""
    numerical = _tested_as(column_type) is ColumnType.NUMERICAL
    if numerical and reference.nunique > BINNED_DISTINCT:
        assert reference.values is not None and current.values is not None
        edges = sturges_edges(reference, current)
        ref_shares = histogram(reference.values, edges) / reference.n
        cur_shares = histogram(current.values, edges) / current.n
    else:
        _, ref_counts, cur_counts = _aligned_counts(reference, current)
        ref_shares = ref_counts / reference.n
        cur_shares = cur_counts / current.n
    if fill_zeroes:
        _fill_zeroes(ref_shares)
        _fill_zeroes(cur_shares)
    return ref_shares, cur_shares


def _fill_zeroes(shares: NDArray[np.float64]) -> None:
    smallest = shares[shares != 0].min()
    np.place(shares, shares == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)


def sturges_edges(reference: ColumnStats, current: ColumnStats) -> NDArray[np.float64]:
    """np.histogram_bin_edges(concat(reference, current), bins="sturges"), from the ends
    and sizes of both sorted sides."""
    assert reference.values is not None and current.values is not None
    integer = reference.integer_dtype and current.integer_dtype
    first = min(reference.values[0], current.values[0])
    last = max(reference.values[-1], current.values[-1])
    size = reference.n + current.n
    ptp = last - first
    if first == last:
        first, last = first - 0.5, last + 0.5
    width = ptp / (np.log2(size) + 1.0)
    if width:
        if integer and width < 1:
            width = 1
        bins = int(np.ceil((last - first) / width))
    else:
        bins = 1
    return np.linspace(first, last, bins + 1, endpoint=True, dtype=np.float64)


def drifted(test: str, score: float, threshold: float) -> bool:
    """Evidently's verdict: ks p <= t; chisquare and z p < t; distances >= t."""
    if test == KS:
        return score <= threshold
    if test in (CHISQUARE, Z):
        return score < threshold
    return score >= threshold


_ALLOWED: dict[str, tuple[ColumnType, ...]] = {
    KS: (ColumnType.NUMERICAL,),
    WASSERSTEIN: (ColumnType.NUMERICAL,),
    CHISQUARE: (ColumnType.CATEGORICAL,),
    Z: (ColumnType.CATEGORICAL,),
    PSI: (ColumnType.NUMERICAL, ColumnType.CATEGORICAL),
    JENSENSHANNON: (ColumnType.NUMERICAL, ColumnType.CATEGORICAL),
}


def evaluate(
    reference: ReferenceStats,
    current: pd.Series,
    test: str = AUTO,
    threshold: float | None = None,
    *,
    column_type: ColumnType | None = None,
) -> ColumnDrift:
    """Drift of one current column against its reference statistics, as Evidently scores
    it. The column type is Evidently's type of the current column unless given."""
    if test not in STAT_TESTS and test != Z:
        raise DriftInputError(
            UNSUPPORTED_TEST, f"unknown stat test {test!r}: choose one of {', '.join(STAT_TESTS)}"
        )
    if column_type is None:
        column_type = infer_column_type(current)
    return evaluate_stats(
        reference, column_stats(current), column_type, test, threshold, name=reference.name
    )


def evaluate_stats(
    reference: ColumnStats,
    current: ColumnStats,
    column_type: ColumnType,
    test: str,
    threshold: float | None,
    *,
    name: str,
) -> ColumnDrift:
    if reference.n == 0:
        raise DriftInputError(
            ALL_NULL_COLUMN, f"column {name!r} has no non-null value in the reference data"
        )
    if current.n == 0:
        raise DriftInputError(
            ALL_NULL_COLUMN, f"column {name!r} has no non-null value in the current data"
        )
    tested = _tested_as(column_type)
    chosen = resolve_test(reference, current, column_type, test)
    if test != AUTO and tested not in _ALLOWED[chosen]:
        kinds = " or ".join(
            "numerical" if t is ColumnType.NUMERICAL else "categorical" for t in _ALLOWED[chosen]
        )
        raise DriftInputError(
            TEST_NOT_APPLICABLE,
            f"stat test {chosen} applies to {kinds} columns only; column {name!r} is"
            f" {'numerical' if tested is ColumnType.NUMERICAL else 'categorical'}"
            " (choose its test with --stat-test auto, or leave it out with --columns)",
        )
    if tested is ColumnType.NUMERICAL and not (reference.numeric_dtype and current.numeric_dtype):
        side = "reference" if not reference.numeric_dtype else "current"
        raise DriftInputError(
            TEST_NOT_APPLICABLE,
            f"column {name!r} is numerical in the current data but not numeric in the {side}",
        )
    limit = DEFAULT_THRESHOLDS[chosen] if threshold is None else float(threshold)
    score = _score(chosen, reference, current, column_type)
    verdict = False if math.isnan(score) else drifted(chosen, score, limit)
    return ColumnDrift(
        name=name,
        test=chosen,
        score=None if math.isnan(score) else score,
        threshold=limit,
        drifted=verdict,
    )


def _score(
    test: str, reference: ColumnStats, current: ColumnStats, column_type: ColumnType
) -> float:
    if test in (KS, WASSERSTEIN):
        assert reference.values is not None and current.values is not None
        if test == KS:
            return ks_pvalue(reference.values, current.values)
        std = reference.std if reference.std is not None else float(np.std(reference.values))
        return wasserstein_normed(reference.values, current.values, std)
    if test in (CHISQUARE, Z):
        keys, ref_counts, cur_counts = _aligned_counts(reference, current)
        if test == CHISQUARE:
            return chisquare_pvalue(ref_counts, cur_counts)
        return z_pvalue(keys, ref_counts, cur_counts)
    ref_shares, cur_shares = binned_shares(reference, current, column_type, fill_zeroes=test == PSI)
    if test == PSI:
        return psi(ref_shares, cur_shares)
    return jensenshannon(ref_shares, cur_shares)
