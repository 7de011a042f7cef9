"""A drift check: every column's test against the reference, the share of drifted columns
and its severity (the DriftCheck's warning/critical thresholds). Pure: data in, result out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from maestro.monitoring.column_types import ColumnType, infer_column_type
from maestro.monitoring.contract import ColumnDrift, DriftResult, severity_of
from maestro.monitoring.errors import (
    BAD_ARGUMENT,
    COLUMN_MISSING,
    EMPTY_DATA,
    UNSUPPORTED_TEST,
    DriftInputError,
)
from maestro.monitoring.stattests import (
    STAT_TESTS,
    STRING_COLUMNS,
    ReferenceStats,
    evaluate,
    reference_stats,
)

DEFAULT_WARNING = 0.3
DEFAULT_CRITICAL = 0.5
MAX_WORKERS = 4  # threads testing columns side by side (bounded by the CPUs)

Progress = Callable[[Iterable[str]], Iterable[str]]


def resolve_columns(
    requested: Sequence[str] | None,
    current_columns: Sequence[str],
    reference_columns: Sequence[str],
) -> list[str]:
    """The columns to check: those asked for (each must be on both sides), else every
    column of the current data that the reference also has, in the current's order."""
    if requested is not None:
        columns = list(dict.fromkeys(requested))
        if not columns:
            raise DriftInputError(BAD_ARGUMENT, "--columns names no column")
        for side, present in (("reference", reference_columns), ("current", current_columns)):
            missing = [c for c in columns if c not in set(present)]
            if missing:
                names = ", ".join(repr(c) for c in missing)
                raise DriftInputError(
                    COLUMN_MISSING, f"column(s) {names} missing in the {side} data"
                )
        return columns
    shared = set(reference_columns)
    columns = [str(c) for c in current_columns if c in shared]
    if not columns:
        raise DriftInputError(
            COLUMN_MISSING, "the reference and current data have no column in common"
        )
    return columns


def check_settings(
    stat_test: str, threshold: float | None, warning: float, critical: float
) -> None:
    if stat_test not in STAT_TESTS:
        raise DriftInputError(
            UNSUPPORTED_TEST,
            f"unknown stat test {stat_test!r}: choose one of {', '.join(STAT_TESTS)}",
        )
    if threshold is not None and not threshold > 0:
        raise DriftInputError(BAD_ARGUMENT, f"threshold must be > 0, got {threshold}")
    for name, value in (("warning", warning), ("critical", critical)):
        if not 0 <= value <= 1:
            raise DriftInputError(BAD_ARGUMENT, f"{name} must be a share in [0, 1], got {value}")
    if warning > critical:
        raise DriftInputError(
            BAD_ARGUMENT, f"warning ({warning}) must not exceed critical ({critical})"
        )


def check(
    reference: Mapping[str, ReferenceStats] | pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str] | None = None,
    stat_test: str = "auto",
    threshold: float | None = None,
    warning: float = DEFAULT_WARNING,
    critical: float = DEFAULT_CRITICAL,
    *,
    progress: Progress | None = None,
    workers: int | None = None,
) -> DriftResult:
    """Drift of `current` against the reference (its statistics per column, or the frame).

    threshold None: each test's Evidently default (p-values 0.05, distances 0.1). The
    drift share is drifted / checked columns; severity from warning and critical.
    """
    check_settings(stat_test, threshold, warning, critical)
    reference_columns = [str(c) for c in reference]
    names = resolve_columns(columns, [str(c) for c in current.columns], reference_columns)
    if len(current) == 0:
        raise DriftInputError(EMPTY_DATA, "the current data has no rows")
    if isinstance(reference, pd.DataFrame):
        if len(reference) == 0:
            raise DriftInputError(EMPTY_DATA, "the reference data has no rows")
        stats: Mapping[str, ReferenceStats] = {
            name: reference_stats(reference[name], name) for name in names
        }
    else:
        stats = reference
    strings = set(current.attrs.get(STRING_COLUMNS, ()))
    types: dict[str, ColumnType] = {
        name: infer_column_type(current[name], strings=name in strings) for name in names
    }
    results: list[ColumnDrift] = []
    workers = min(workers or os.cpu_count() or 1, MAX_WORKERS, len(names))
    if workers <= 1:
        for name in progress(names) if progress else names:
            results.append(
                evaluate(stats[name], current[name], stat_test, threshold, column_type=types[name])
            )
    else:
        # numpy's sorts and searches release the GIL: columns run side by side.
        with ThreadPoolExecutor(workers, thread_name_prefix="drift") as pool:
            futures = [
                pool.submit(
                    evaluate,
                    stats[name],
                    current[name],
                    stat_test,
                    threshold,
                    column_type=types[name],
                )
                for name in names
            ]
            try:
                for _, future in zip(progress(names) if progress else names, futures, strict=True):
                    results.append(future.result())
            finally:
                for future in futures:
                    future.cancel()
    drifted = sum(1 for c in results if c.drifted)
    share = drifted / len(results)
    reference_rows = max((stats[name].rows for name in names), default=0)
    if reference_rows == 0:
        raise DriftInputError(EMPTY_DATA, "the reference data has no rows")
    return DriftResult(
        drift_share=share,
        severity=severity_of(share, warning, critical),
        columns=results,
        reference_rows=reference_rows,
        current_rows=len(current),
    )


def check_with_reference_uri(
    reference: str,
    current: pd.DataFrame,
    columns: Sequence[str] | None = None,
    stat_test: str = "auto",
    threshold: float | None = None,
    warning: float = DEFAULT_WARNING,
    critical: float = DEFAULT_CRITICAL,
    *,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> DriftResult:
    """`check` of a current frame in memory against the reference at a URI: its statistics
    from the cache beside it (computed from the data and cached on first use). Raises
    DriftInputError (exit 2) or DriftUnavailableError (exit 3)."""
    from maestro.monitoring.reference_cache import Reference

    check_settings(stat_test, threshold, warning, critical)
    with Reference(reference, use_cache=use_cache) as reference_side:
        names = resolve_columns(columns, [str(c) for c in current.columns], reference_side.columns)
        stats = reference_side.statistics(names)
    return check(stats, current, names, stat_test, threshold, warning, critical, progress=progress)
