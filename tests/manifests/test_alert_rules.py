"""The alert rules the ModelDeployment renderer puts in its PrometheusRule pass
`promtool check rules` (Debian's prometheus package, installed by `make services`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.modeldeployment_render_cases import CASES, rendered

pytestmark = pytest.mark.manifests

WITH_RULES = [case for case in CASES if any(o["kind"] == "PrometheusRule" for o in rendered(case))]


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: install Debian's prometheus with `make services`")
    return path


def test_some_case_renders_alert_rules() -> None:
    assert "canary" in WITH_RULES


@pytest.mark.parametrize("case", WITH_RULES)
def test_alert_rules_pass_promtool(promtool: str, tmp_path: Path, case: str) -> None:
    (rule,) = [o for o in rendered(case) if o["kind"] == "PrometheusRule"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    proc = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
