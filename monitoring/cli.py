"""`maestro drift check`: data drift of a current dataset against a reference.

Also the Python API the DriftCheck Job's program calls: `run_check(...) -> DriftResult` and
`write_html_report(...)`. The engine (numpy, pandas) is imported only when a check runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from maestro.monitoring.contract import EXIT_OK, DriftResult

if TYPE_CHECKING:
    import pandas as pd

STAT_TEST_CHOICES = ("auto", "ks", "psi", "chisquare", "wasserstein", "jensenshannon")

DRIFT_CHECK_EPILOG = """\
datasets (--reference, --current):
  PATH or file://PATH          local .parquet/.pq or .csv (also .csv.gz, .bz2, .zst); a folder
                               is a partitioned parquet dataset
  s3://BUCKET/KEY              an object in the object store (AWS_ENDPOINT_URL_S3,
                               AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
  runs:/RUN_ID/PATH            an artifact of an MLflow run (MLFLOW_TRACKING_URI)
  runs:/RUN_ID                 the dataset that run trained on: a TrainingRun's logged
                               dataset (its status.mlflowRunId)
  sklearn://NAME, ...          any dataset URI a TrainingRun trains on (its logged dataset)

stat tests (--stat-test), each column tested alone, scores and verdicts as Evidently's:
  auto           Evidently's choice per column. Reference of <= 1000 values: ks for
                 numerical columns, chisquare for categorical ones (z-test for two values;
                 also numerical columns of <= 5 values); larger reference: wasserstein for
                 numerical columns, jensenshannon for categorical ones (and numerical
                 columns of <= 5 values)
  ks             Kolmogorov-Smirnov p-value, numerical; drift if p <= threshold (0.05)
  chisquare      chi-square p-value of category counts, categorical; drift if p < 0.05
  wasserstein    Wasserstein distance / reference std, numerical; drift if >= 0.1
  psi            population stability index; drift if >= 0.1
  jensenshannon  Jensen-Shannon distance; drift if >= 0.1
  Columns are typed as Evidently types the current data: floats are numerical, integers
  with <= 10 distinct values categorical, strings, booleans and categories categorical.
  A test forced on a column of the other type is bad input (exit 2).

reference cache:
  The reference's statistics (sorted values, category counts) are computed once and kept
  beside it: FILE.maestro-refstats/ for a local file, KEY.maestro-refstats/ for s3, else
  $MAESTRO_REFSTATS_DIR (~/.cache/maestro/refstats). Later checks of the same reference
  data read only them. --no-cache computes them in memory and stores nothing.

--report PATH.html is optional and slower: it runs Evidently itself (its DataDriftPreset
with the same per-column tests and thresholds) on the full reference and current data.

exit status: 0 the check ran (whatever drift it found), 2 bad input (a dataset that cannot
be read or has no rows, a column missing on one side or all null, a bad option), 3 the
object store or MLflow could not be reached (worth retrying)
"""

log = logging.getLogger("maestro.monitoring.drift")

Progress = Callable[[Iterable[str]], Iterable[str]]


def _columns(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if not text.strip() or any(not name for name in names):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated column names (a,b,c), got {text!r}"
        )
    return list(dict.fromkeys(names))


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value != value:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1], got {text!r}")
    return value


def add_commands(commands: Any) -> Any:
    """Add `drift` (with `check`) to the `maestro` command's subparsers; returns the
    subparsers of `drift`, where further subcommands (`run`) are added."""
    drift = commands.add_parser(
        "drift",
        help="data drift of a dataset against a reference (Evidently's tests, fast)",
        description="Check data drift column by column, as a DriftCheck does.",
    )
    sub = drift.add_subparsers(dest="drift_command", required=True, metavar="SUBCOMMAND")
    check = sub.add_parser(
        "check",
        help="test each column of the current data against the reference; print the result",
        description=(
            "Test every column (or --columns) of the current data against the reference\n"
            "with Evidently's statistical tests, from reference statistics cached beside the\n"
            "reference. Prints each column's score and verdict, the share of drifted columns\n"
            "and its severity (Ok, Warning, Critical) against --warning and --critical."
        ),
        epilog=DRIFT_CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("--reference", required=True, metavar="URI", help="the reference data")
    check.add_argument("--current", required=True, metavar="URI", help="the data to check")
    check.add_argument(
        "--columns",
        type=_columns,
        metavar="A,B",
        help="only these columns (default: every column both datasets have)",
    )
    check.add_argument(
        "--stat-test",
        choices=STAT_TEST_CHOICES,
        default="auto",
        help="the test of every column (default: auto, Evidently's choice per column)",
    )
    check.add_argument(
        "--threshold",
        type=_positive,
        metavar="X",
        help="a column drifts past this p-value/distance (default: the test's, 0.05 or 0.1)",
    )
    check.add_argument(
        "--warning",
        type=_share,
        default=0.3,
        metavar="SHARE",
        help="severity Warning from this share of drifted columns (default: 0.3)",
    )
    check.add_argument(
        "--critical",
        type=_share,
        default=0.5,
        metavar="SHARE",
        help="severity Critical from this share of drifted columns (default: 0.5)",
    )
    check.add_argument(
        "--output", choices=("text", "json"), default="text", help="text table or JSON"
    )
    check.add_argument(
        "--report",
        type=Path,
        metavar="PATH.html",
        help="also write Evidently's HTML report (optional, slower: reads all the data)",
    )
    check.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the reference statistics cache",
    )
    check.set_defaults(handler=_check_command)
    return sub


# --- progress -----------------------------------------------------------------------------


def progress_for(stream: TextIO, what: str = "columns") -> Progress:
    """A tqdm bar on a terminal; plain log lines otherwise (a pod's log)."""
    interactive = bool(getattr(stream, "isatty", lambda: False)())

    def bar(names: Iterable[str]) -> Iterable[str]:
        from tqdm import tqdm

        items = list(names)
        wrapped: Iterable[str] = tqdm(items, desc=what, unit="column", file=stream, leave=False)
        return wrapped

    def lines(names: Iterable[str]) -> Iterator[str]:
        items = list(names)
        total = len(items)
        step = max(1, total // 10)
        for index, name in enumerate(items, 1):
            yield name
            if index == total or index % step == 0:
                print(f"drift: {what} {index}/{total} done ({name})", file=stream, flush=True)

    return bar if interactive else lines


# --- the API of the DriftCheck Job's program --------------------------------------------


def run_check(
    reference: str,
    current: str,
    *,
    columns: Sequence[str] | None = None,
    stat_test: str = "auto",
    threshold: float | None = None,
    warning: float = 0.3,
    critical: float = 0.5,
    use_cache: bool = True,
    report: str | Path | None = None,
    progress: Progress | None = None,
) -> DriftResult:
    """Check `current` against `reference` (URIs). Raises DriftInputError (exit 2) or
    DriftUnavailableError (exit 3); `.failure()` gives the DriftFailure to write."""
    from maestro.monitoring import datasets
    from maestro.monitoring.drift import check, check_settings, resolve_columns
    from maestro.monitoring.reference_cache import Reference

    check_settings(stat_test, threshold, warning, critical)
    with (
        datasets.open_dataset(current, datasets.CURRENT) as current_data,
        Reference(reference, use_cache=use_cache) as reference_side,
    ):
        names = resolve_columns(columns, current_data.columns, reference_side.columns)
        stats = reference_side.statistics(names)
        frame = current_data.read(names)
        result = check(
            stats, frame, names, stat_test, threshold, warning, critical, progress=progress
        )
        if report is not None:
            reference_frame = reference_side.read(names)
            write_html_report(
                reference_frame,
                frame,
                names,
                stat_test,
                report,
                tests={c.name: c.test for c in result.columns},
                thresholds={c.name: c.threshold for c in result.columns},
            )
    return result


def write_html_report(
    reference_frame: pd.DataFrame,
    current_frame: pd.DataFrame,
    columns: Sequence[str] | None,
    stat_test: str,
    path: str | Path,
    *,
    threshold: float | None = None,
    tests: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> Path:
    """Evidently's own HTML drift report (Report + DataDriftPreset) of the same data, with
    the same test per column: `tests`/`thresholds` per column when given (what a check
    chose), else `stat_test` for all (auto = Evidently's choice). Slow on large data."""
    import warnings

    from evidently import Report
    from evidently.presets import DataDriftPreset

    names = list(columns) if columns is not None else None
    preset = DataDriftPreset(
        columns=names,
        method=None if stat_test == "auto" or tests else stat_test,
        threshold=threshold,
        per_column_method=dict(tests) if tests else None,
        per_column_threshold=dict(thresholds) if thresholds else None,
    )
    selected = names if names is not None else list(current_frame.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([preset]).run(current_frame[selected], reference_frame[selected])
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(target))
    return target


# --- the command ------------------------------------------------------------------------


def format_text(result: DriftResult) -> str:
    header = ("column", "test", "score", "threshold", "drifted")
    rows = [
        (
            c.name,
            c.test,
            "-" if c.score is None else f"{c.score:.6g}",
            f"{c.threshold:g}",
            "DRIFT" if c.drifted else "no",
        )
        for c in result.columns
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    drifted = len(result.drifted_columns)
    lines.append("")
    lines.append(
        f"drift share {result.drift_share:.3g} ({drifted} of {len(result.columns)} columns"
        f" drifted): severity {result.severity.value}"
    )
    lines.append(f"rows: reference {result.reference_rows}, current {result.current_rows}")
    return "\n".join(lines)


def _configure_logging() -> None:
    logger = logging.getLogger("maestro.monitoring")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("drift: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _check_command(args: argparse.Namespace) -> int:
    from maestro.monitoring.errors import DriftError

    _configure_logging()
    try:
        result = run_check(
            args.reference,
            args.current,
            columns=args.columns,
            stat_test=args.stat_test,
            threshold=args.threshold,
            warning=args.warning,
            critical=args.critical,
            use_cache=not args.no_cache,
            report=args.report,
            progress=progress_for(sys.stderr),
        )
    except DriftError as err:
        print(f"error: {err.reason}: {err.message}", file=sys.stderr)
        if args.output == "json":
            print(json.dumps(err.failure().model_dump(by_alias=True, mode="json")))
        return err.exit_code
    if args.output == "json":
        print(json.dumps(result.model_dump(by_alias=True, mode="json")))
    else:
        print(format_text(result))
        if args.report is not None:
            print(f"report: {args.report}")
    return EXIT_OK
