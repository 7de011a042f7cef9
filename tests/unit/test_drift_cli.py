"""`maestro drift check` on temporary Parquet/CSV files: the JSON contract, exit 2 for bad
input naming what is wrong, the reference statistics cache, progress in a pod's log."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from maestro.monitoring import reference_cache
from maestro.monitoring.cli import progress_for, run_check
from maestro.monitoring.contract import DriftResult
from maestro.operators.cli import main
from tests.unit.drift_cases import SHIFTED, shifted_frames

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return shifted_frames(3000, seed=1)


@pytest.fixture
def files(tmp_path: Path, frames: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, Path]:
    reference, current = frames
    paths = {
        "reference": tmp_path / "reference.parquet",
        "current": tmp_path / "current.parquet",
        "current_csv": tmp_path / "current.csv",
    }
    reference.to_parquet(paths["reference"])
    current.to_parquet(paths["current"])
    current.to_csv(paths["current_csv"], index=False)
    return paths


def drift(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["drift", "check", *args])
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_json_output_is_the_contract(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    code, out, err = drift(
        capsys,
        "--reference",
        str(files["reference"]),
        "--current",
        str(files["current_csv"]),
        "--output",
        "json",
    )
    assert code == 0, err
    document: dict[str, Any] = json.loads(out)
    assert set(document) == {
        "driftShare",
        "severity",
        "columns",
        "referenceRows",
        "currentRows",
        "reportUri",
        "mlflowRunId",
    }
    assert all(
        set(c) == {"name", "test", "score", "threshold", "drifted"} for c in document["columns"]
    )
    result = DriftResult.model_validate(document)
    assert document == result.model_dump(by_alias=True, mode="json")
    assert result.drifted_columns == list(SHIFTED)
    assert result.drift_share == 0.5 and result.severity.value == "Critical"
    assert (result.reference_rows, result.current_rows) == (3000, 3000)


def test_text_output_is_a_table(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    code, out, _ = drift(
        capsys,
        "--reference",
        str(files["reference"]),
        "--current",
        str(files["current"]),
        "--columns",
        "num_same,num_shift",
        "--stat-test",
        "ks",
        "--warning",
        "0.2",
        "--critical",
        "0.9",
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["column", "test", "score", "threshold", "drifted"]
    assert lines[1].split()[:2] == ["num_same", "ks"] and lines[1].split()[-1] == "no"
    assert lines[2].split()[-1] == "DRIFT"
    assert "drift share 0.5 (1 of 2 columns drifted): severity Warning" in out


@pytest.mark.parametrize(
    ("args", "reason", "named"),
    [
        (["--current", "missing.parquet"], "CurrentUnreadable", "missing.parquet"),
        (["--columns", "num_same,nope"], "ColumnMissing", "'nope'"),
        (["--current", "current.txt"], "UnsupportedFormat", "current.txt"),
    ],
)
def test_bad_input_exits_2(
    capsys: pytest.CaptureFixture[str],
    files: dict[str, Path],
    args: list[str],
    reason: str,
    named: str,
) -> None:
    (files["current"].parent / "current.txt").write_text("a,b\n1,2\n")
    options = {"--reference": str(files["reference"]), "--current": str(files["current"])}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        options[flag] = str(files["current"].parent / value) if flag == "--current" else value
    code, out, err = drift(capsys, *[x for kv in options.items() for x in kv], "--output", "json")
    assert code == 2
    failure = json.loads(out)
    assert failure["reason"] == reason and named in failure["message"]
    assert reason in err


def test_missing_reference_and_column_sides(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path
) -> None:
    code, _, err = drift(
        capsys, "--reference", str(tmp_path / "nope.parquet"), "--current", str(files["current"])
    )
    assert code == 2 and "ReferenceUnreadable" in err
    pd.DataFrame({"num_same": [1.0, 2.0], "only_here": [1.0, 2.0]}).to_parquet(
        tmp_path / "narrow.parquet"
    )
    code, _, err = drift(
        capsys,
        "--reference",
        str(files["reference"]),
        "--current",
        str(tmp_path / "narrow.parquet"),
        "--columns",
        "num_same,num_shift",
    )
    assert code == 2 and "'num_shift' missing in the current data" in err


def test_empty_and_all_null_are_bad_input(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.parquet"
    pd.DataFrame({"num_same": pd.Series([], dtype=float)}).to_parquet(empty)
    code, _, err = drift(capsys, "--reference", str(files["reference"]), "--current", str(empty))
    assert code == 2 and "EmptyData" in err
    nulls = tmp_path / "nulls.parquet"
    pd.DataFrame({"num_same": [np.nan] * 10, "num_shift": np.arange(10.0)}).to_parquet(nulls)
    code, _, err = drift(capsys, "--reference", str(files["reference"]), "--current", str(nulls))
    assert code == 2 and "AllNullColumn" in err and "'num_same'" in err and "current" in err


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--stat-test", "anova"], "--stat-test"),
        (["--columns", "a,,b"], "--columns"),
        (["--columns", ""], "--columns"),
        (["--threshold", "-1"], "--threshold"),
        (["--warning", "2"], "--warning"),
    ],
)
def test_bad_options_exit_2_naming_the_field(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], args: list[str], field: str
) -> None:
    code, _, err = drift(
        capsys, "--reference", str(files["reference"]), "--current", str(files["current"]), *args
    )
    assert code == 2
    assert f"argument {field}" in err


def test_cache_written_once_then_reference_never_read(
    capsys: pytest.CaptureFixture[str],
    files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[str] = []
    real_read = reference_cache.Reference.read

    def counting(self: reference_cache.Reference, columns: Any) -> pd.DataFrame:
        reads.append(self.uri)
        return real_read(self, columns)

    monkeypatch.setattr(reference_cache.Reference, "read", counting)
    args = ["--reference", str(files["reference"]), "--current", str(files["current"])]
    code, first, _ = drift(capsys, *args, "--output", "json")
    assert code == 0 and len(reads) == 1
    cache = files["reference"].with_name("reference.parquet.maestro-refstats")
    written = sorted(p.name for p in cache.rglob("*.npz"))
    assert len(written) == 8
    # Another test and a subset of the columns: the same statistics serve.
    code, _, _ = drift(capsys, *args, "--stat-test", "psi", "--columns", "cat_shift,num_same")
    assert code == 0 and len(reads) == 1
    files["reference"].unlink()  # later runs need only the cache
    code, again, _ = drift(capsys, *args, "--output", "json")
    assert code == 0 and len(reads) == 1
    assert json.loads(again) == json.loads(first)
    assert sorted(p.name for p in cache.rglob("*.npz")) == written


def test_no_cache_writes_nothing(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    code, _, _ = drift(
        capsys,
        "--reference",
        str(files["reference"]),
        "--current",
        str(files["current"]),
        "--no-cache",
    )
    assert code == 0
    assert not files["reference"].with_name("reference.parquet.maestro-refstats").exists()


def test_progress_lines_without_a_terminal(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    code, _, err = drift(
        capsys, "--reference", str(files["reference"]), "--current", str(files["current"])
    )
    assert code == 0
    assert "drift: columns 8/8 done (int_shift)" in err.splitlines()
    assert "\r" not in err and "it/s" not in err and "column/s" not in err


def test_progress_bar_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    assert list(progress_for(stream)(["a", "b"])) == ["a", "b"]
    assert "\r" in stream.getvalue() and "columns:" in stream.getvalue()


def test_run_check_and_report(files: dict[str, Path], tmp_path: Path) -> None:
    report = tmp_path / "out" / "report.html"
    result = run_check(
        str(files["reference"]),
        f"file://{files['current']}",
        columns=["num_shift", "cat_same"],
        use_cache=False,
        report=report,
    )
    assert result.drifted_columns == ["num_shift"]
    assert report.stat().st_size > 10_000 and "num_shift" in report.read_text()


def test_help_explains_uris_tests_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = drift(capsys, "--help")
    assert code == 0
    for words in ("s3://", "runs:/", "wasserstein", "jensenshannon", "exit status", "3 the"):
        assert words in out


def test_a_training_dataset_uri_is_a_reference() -> None:
    # s3:// and runs:/ references are tested against the real object store and MLflow
    # (tests/integration/test_objectstore.py, tests/integration/test_drift_runs.py).
    iris = run_check("sklearn://iris", "sklearn://iris", use_cache=False)
    assert iris.drift_share == 0 and len(iris.columns) == 5


def test_check_with_reference_uri_for_the_job(files: dict[str, Path]) -> None:
    """The DriftCheck Job's call: current frame in memory, reference by URI (cached)."""
    from maestro.monitoring.drift import check_with_reference_uri

    current = pd.read_parquet(files["current"])
    result = check_with_reference_uri(str(files["reference"]), current, stat_test="psi")
    assert result.drifted_columns == list(SHIFTED)
    assert {c.test for c in result.columns} == {"psi"}
    assert files["reference"].with_name("reference.parquet.maestro-refstats").is_dir()
