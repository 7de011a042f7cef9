"""The committed manifests/monitoring/rules/*.rules.yaml are exactly what the alert rules and
the renderers generate (`make manifests`), as manifests/crds is for the models."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestro.operators import rulegen

pytestmark = pytest.mark.unit

COMMITTED = Path(__file__).resolve().parents[2] / "manifests" / "monitoring" / "rules"


def test_committed_rule_files_match_the_generated_ones() -> None:
    assert rulegen.diff(COMMITTED) == "", (
        "manifests/monitoring/rules is out of date: run `make manifests`"
    )


def test_write_replaces_stale_generated_files_and_keeps_the_tests(tmp_path: Path) -> None:
    (tmp_path / "old.rules.yaml").write_text("stale")
    (tmp_path / "platform.test.yaml").write_text("kept")
    rulegen.write(tmp_path)
    assert not (tmp_path / "old.rules.yaml").exists()
    assert (tmp_path / "platform.test.yaml").read_text() == "kept"
    assert rulegen.diff(tmp_path) == ""
    assert rulegen.main([str(tmp_path), "--check"]) == 0
    (tmp_path / "platform.rules.yaml").write_text("groups: []\n")
    assert "platform.rules.yaml (committed)" in rulegen.diff(tmp_path)
