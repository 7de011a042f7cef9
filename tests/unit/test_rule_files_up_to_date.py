"""The committed manifests/monitoring/rules/*.rules.yaml and prometheusrule.yaml are exactly
what the alert rules and the renderers generate (`make manifests`), as manifests/crds is
for the models."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from maestro.operators import rulegen

pytestmark = pytest.mark.unit

COMMITTED = Path(__file__).resolve().parents[2] / "manifests" / "monitoring"


def test_committed_rule_files_match_the_generated_ones() -> None:
    assert rulegen.diff(COMMITTED) == "", (
        "manifests/monitoring's rule files are out of date: run `make manifests`"
    )


def test_write_replaces_stale_generated_files_and_keeps_the_tests(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "old.rules.yaml").write_text("stale")
    (tmp_path / "rules" / "platform.test.yaml").write_text("kept")
    rulegen.write(tmp_path)
    assert not (tmp_path / "rules" / "old.rules.yaml").exists()
    assert (tmp_path / "rules" / "platform.test.yaml").read_text() == "kept"
    assert rulegen.diff(tmp_path) == ""
    assert rulegen.main([str(tmp_path), "--check"]) == 0
    (tmp_path / "rules" / "platform.rules.yaml").write_text("groups: []\n")
    assert "platform.rules.yaml (committed)" in rulegen.diff(tmp_path)
    assert rulegen.main([str(tmp_path), "--check"]) == 1


def test_the_prometheus_rule_holds_the_platform_rule_file() -> None:
    rule = yaml.safe_load((COMMITTED / "prometheusrule.yaml").read_text())
    platform = yaml.safe_load((COMMITTED / "rules" / "platform.rules.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == platform["groups"]
