"""The committed folders of generated files: written where they changed, stale generated
files removed, other files left alone, and the diff the up-to-date tests print."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestro.operators.api.generated_files import diff_files, write_files

pytestmark = pytest.mark.unit


def test_write_removes_only_stale_generated_files_and_keeps_unchanged_ones(
    tmp_path: Path,
) -> None:
    (tmp_path / "gen-old.yaml").write_text("old\n")
    (tmp_path / "hand-written.yaml").write_text("mine\n")
    (tmp_path / "gen-same.yaml").write_text("same\n")
    before = (tmp_path / "gen-same.yaml").stat().st_mtime_ns
    files = {"gen-same.yaml": "same\n", "sub/gen-new.yaml": "new\n"}
    written = write_files(tmp_path, files, {"gen-old.yaml", "gen-same.yaml"})
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == sorted(files)
    assert not (tmp_path / "gen-old.yaml").exists()
    assert (tmp_path / "hand-written.yaml").read_text() == "mine\n"
    assert (tmp_path / "sub/gen-new.yaml").read_text() == "new\n"
    assert (tmp_path / "gen-same.yaml").stat().st_mtime_ns == before


def test_diff_names_changed_missing_and_stale_files_and_is_empty_when_up_to_date(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.yaml").write_text("one\n")
    (tmp_path / "stale.yaml").write_text("gone\n")
    files = {"a.yaml": "two\n", "b.yaml": "new\n"}
    diff = diff_files(tmp_path, files, {"a.yaml", "stale.yaml"})
    assert "-one" in diff and "+two" in diff
    assert "+new" in diff and "-gone" in diff
    write_files(tmp_path, files, {"a.yaml", "stale.yaml"})
    assert diff_files(tmp_path, files, {"a.yaml", "b.yaml"}) == ""
