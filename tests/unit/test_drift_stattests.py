"""The drift tests from cached reference statistics equal Evidently's run directly on the
same data: each column's test, score (1e-9 relative) and verdict (exactly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from maestro.monitoring import datasets, stattests
from maestro.monitoring.column_types import ColumnType, infer_column_type
from maestro.monitoring.drift import check
from maestro.monitoring.errors import DriftInputError
from maestro.monitoring.reference_cache import dump_stats, load_stats
from maestro.monitoring.stattests import evaluate, reference_stats
from tests.unit.drift_cases import SHIFTED, evidently_drift, shifted_frames

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

REL = 1e-9


def mixed_frame(rows: int, shift: float, seed: int) -> pd.DataFrame:
    """Every kind of column Evidently distinguishes, with NaN and +-inf."""
    rng = np.random.default_rng(seed)
    floats = np.where(rng.random(rows) < 0.05, np.nan, rng.normal(shift, 1, rows))
    floats[:3] = [np.inf, -np.inf, np.nan]
    strings = pd.Series(rng.choice(list("abcde"), rows)).where(rng.random(rows) > 0.1)
    return pd.DataFrame(
        {
            "float": floats,
            "float_shift": rng.normal(2 * shift, 1, rows),
            "float_3_values": rng.choice([0.0, 1.0, 2.5], rows)
            + (shift > 0) * rng.choice([0, 0, 0, 1.0], rows),
            "float_2_values": rng.choice([1.5, 2.5], rows, p=[0.3 + shift / 5, 0.7 - shift / 5]),
            "float_15_values": rng.integers(0, 15, rows).astype(float),
            "int": rng.integers(0, 50 + int(shift * 10), rows),
            "int_narrow": rng.integers(0, 25, rows),  # Sturges width < 1 on integers
            "int_4_values": rng.integers(0, 4, rows),  # categorical (<= 10 distinct)
            "int_2_values": rng.integers(0, 2, rows),
            "string": strings,
            "string_2_values": rng.choice(["x", "y"], rows, p=[0.5 + shift / 10, 0.5 - shift / 10]),
            "bool": rng.random(rows) < 0.5 + shift / 10,
        }
    )


NUMERICAL = ["float", "float_shift", "float_3_values", "float_2_values", "float_15_values"]
NUMERICAL += ["int", "int_narrow"]
CATEGORICAL = ["int_4_values", "int_2_values", "string", "string_2_values", "bool"]
APPLICABLE = {
    "ks": NUMERICAL,
    "wasserstein": NUMERICAL,
    "chisquare": CATEGORICAL,
    "psi": NUMERICAL + CATEGORICAL,
    "jensenshannon": NUMERICAL + CATEGORICAL,
}
# Reference sizes on both sides of Evidently's 1000 (auto) and scipy's 10,000 (exact KS).
SIZES = {"small": (400, 300), "large": (3000, 2500)}


def ours(
    reference: pd.DataFrame, current: pd.DataFrame, test: str, columns: list[str]
) -> dict[str, stattests.ColumnDrift]:
    """Through the cache's own bytes, as a later run reads them."""
    cached = {c: load_stats(dump_stats(reference_stats(reference[c], c))) for c in columns}
    return {c: evaluate(cached[c], current[c], test) for c in columns}


def assert_equal(
    reference: pd.DataFrame, current: pd.DataFrame, test: str, columns: list[str]
) -> dict[str, stattests.ColumnDrift]:
    mine = ours(reference, current, test, columns)
    theirs = evidently_drift(reference, current, None if test == "auto" else test, columns)
    assert set(theirs) == set(columns)
    for name in columns:
        got, expected = mine[name], theirs[name]
        assert got.test == expected.test, name
        assert got.score is not None
        assert got.score == pytest.approx(expected.score, rel=REL, abs=0), (name, got, expected)
        assert got.drifted is expected.drifted, (name, got, expected)
        assert got.threshold == expected.threshold, name
    return mine


@pytest.mark.parametrize("size", sorted(SIZES))
def test_auto_equals_evidently(size: str) -> None:
    rows_ref, rows_cur = SIZES[size]
    reference, current = mixed_frame(rows_ref, 0.0, 1), mixed_frame(rows_cur, 0.3, 2)
    mine = assert_equal(reference, current, "auto", list(reference.columns))
    chosen = {c.test for c in mine.values()}
    if size == "small":
        assert chosen == {"ks", "chisquare", "z"}
    else:
        assert chosen == {"wasserstein", "jensenshannon"}
    assert any(c.drifted for c in mine.values()) and not all(c.drifted for c in mine.values())


@pytest.mark.parametrize("size", sorted(SIZES))
@pytest.mark.parametrize("test", sorted(APPLICABLE))
def test_forced_test_equals_evidently(test: str, size: str) -> None:
    rows_ref, rows_cur = SIZES[size]
    reference, current = mixed_frame(rows_ref, 0.0, 3), mixed_frame(rows_cur, 0.3, 4)
    assert_equal(reference, current, test, APPLICABLE[test])


@pytest.mark.parametrize("test", ["ks", "wasserstein", "psi"])
def test_beyond_exact_ks_sizes_equals_evidently(test: str) -> None:
    """Over 10,000 values scipy's KS p-value is asymptotic: computed from sorted arrays."""
    reference, current = mixed_frame(12_000, 0.0, 5), mixed_frame(10_500, 0.05, 6)
    assert_equal(reference, current, test, ["float", "float_shift", "int"])


def test_threshold_given_equals_evidently() -> None:
    reference, current = mixed_frame(2000, 0.0, 7), mixed_frame(2000, 0.1, 8)
    columns = ["float", "float_shift", "string"]
    cached = {c: reference_stats(reference[c]) for c in columns}
    theirs = evidently_drift(reference, current, "psi", columns, threshold=0.02)
    for name in columns:
        got = evaluate(cached[name], current[name], "psi", 0.02)
        assert got.threshold == 0.02
        assert got.drifted is theirs[name].drifted
        assert got.score == pytest.approx(theirs[name].score, rel=REL)


@pytest.mark.parametrize(("test", "column"), [("chisquare", "float"), ("ks", "string")])
def test_test_of_the_other_type_is_refused_as_evidently_does(test: str, column: str) -> None:
    reference, current = mixed_frame(300, 0.0, 9), mixed_frame(300, 0.0, 10)
    with pytest.raises(DriftInputError) as refused:
        evaluate(reference_stats(reference[column]), current[column], test)
    assert refused.value.reason == "StatTestNotApplicable"
    with pytest.raises(ValueError):
        evidently_drift(reference, current, test, [column])


@pytest.mark.parametrize(
    ("test", "columns"),
    [
        ("auto", None),
        ("psi", None),
        ("jensenshannon", None),
        ("ks", ["num_same", "num_shift", "num_scale", "num_other", "int_same", "int_shift"]),
        ("wasserstein", ["num_same", "num_shift", "num_scale", "num_other", "int_shift"]),
        ("chisquare", ["cat_same", "cat_shift"]),
    ],
)
def test_known_shifts_found_exactly(test: str, columns: list[str] | None) -> None:
    reference, current = shifted_frames(5000)
    result = check(reference, current, columns, stat_test=test)
    checked = columns or list(reference.columns)
    assert result.drifted_columns == [c for c in checked if c in SHIFTED]
    assert result.drift_share == len(result.drifted_columns) / len(checked)


def test_all_null_and_empty_columns_are_bad_input() -> None:
    reference = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [np.nan, np.inf, -np.inf]})
    current = pd.DataFrame({"x": [np.nan, np.nan, np.nan], "y": [1.0, 2.0, 3.0]})
    for column, side in (("x", "current"), ("y", "reference")):
        with pytest.raises(DriftInputError) as bad:
            evaluate(reference_stats(reference[column]), current[column])
        assert bad.value.reason == "AllNullColumn"
        assert side in bad.value.message and repr(column) in bad.value.message


def test_column_type_as_evidently_infers_it() -> None:
    from evidently.core.datasets import infer_column_type as evidently_type

    frame = mixed_frame(500, 0.0, 11)
    for name in frame.columns:
        assert infer_column_type(frame[name]).value == evidently_type(frame[name]).value, name
    assert infer_column_type(frame["int_4_values"]) is ColumnType.CATEGORICAL


def test_cached_statistics_round_trip() -> None:
    frame = mixed_frame(800, 0.0, 12)
    for name in frame.columns:
        stats = reference_stats(frame[name])
        again = load_stats(dump_stats(stats))
        assert (again.kind, again.n, again.rows, again.nunique, again.std) == (
            stats.kind,
            stats.n,
            stats.rows,
            stats.nunique,
            stats.std,
        )
        for field in ("values", "categories", "counts"):
            left, right = getattr(stats, field), getattr(again, field)
            assert (left is None and right is None) or np.array_equal(left, right)


def test_parquet_strings_read_as_categories_equal_evidently(tmp_path: Path) -> None:
    """The loader reads string columns dictionary-encoded; they are typed and tested as
    the strings Evidently sees."""
    reference, current = mixed_frame(3000, 0.0, 13), mixed_frame(2500, 0.3, 14)
    current["text"] = [f"free text {i}" for i in range(len(current))]
    reference.to_parquet(tmp_path / "reference.parquet")
    current.to_parquet(tmp_path / "current.parquet")
    read_reference = datasets.load_frame(str(tmp_path / "reference.parquet"))
    read_current = datasets.load_frame(str(tmp_path / "current.parquet"))
    assert read_current["string"].dtype == "category"
    from evidently.core.datasets import infer_column_type as evidently_type

    assert infer_column_type(read_current["text"], strings=True) is ColumnType.TEXT
    assert evidently_type(current["text"]).value == "text"
    columns = [c for c in reference.columns]
    result = check(read_reference, read_current, columns)
    theirs = evidently_drift(reference, current[columns], None, columns)
    for got in result.columns:
        expected = theirs[got.name]
        assert (got.test, got.drifted) == (expected.test, expected.drifted), got.name
        assert got.score == pytest.approx(expected.score, rel=REL, abs=0), got.name
