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


def test_drift_alerts_fire_at_the_checks_thresholds(promtool: str, tmp_path: Path) -> None:
    """promtool's rule unit test: the DriftCheck's Warning fires from its warning share up to
    its critical one, Critical from there; neither below."""
    from maestro.operators.api.driftcheck import DriftCheckSpec
    from maestro.operators.driftcheck.render import DriftSettings, Ids, prometheus_rule

    spec = DriftCheckSpec.model_validate(
        {
            "deployment": "iris",
            "reference": {"uri": "s3://d/ref.parquet"},
            "thresholds": {"warning": 0.25, "critical": 0.5},
        }
    )
    rule = prometheus_rule(Ids("ns", "iris-drift", "u"), spec, DriftSettings())
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    labels = {"namespace": "ns", "driftcheck": "iris-drift", "deployment": "iris"}
    series = "maestro_driftcheck_drift_share" + (
        "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    )

    def fired(alert: str, severity: str, share: str) -> dict[str, object]:
        return {
            "exp_labels": {**labels, "severity": severity},
            "exp_annotations": {
                "summary": f"DriftCheck ns/iris-drift: {severity} input drift",
                "description": (
                    f"{share} of the columns of iris's inputs drifted in the last check"
                    f" (threshold {0.5 if severity == 'critical' else 0.25:g})."
                ),
            },
        }

    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": series, "values": "0.1 0.25 0.75"}],
                "alert_rule_test": [
                    {"eval_time": "0m", "alertname": "MaestroDriftWarning", "exp_alerts": []},
                    {"eval_time": "0m", "alertname": "MaestroDriftCritical", "exp_alerts": []},
                    {
                        "eval_time": "1m",
                        "alertname": "MaestroDriftWarning",
                        "exp_alerts": [fired("MaestroDriftWarning", "warning", "25%")],
                    },
                    {"eval_time": "1m", "alertname": "MaestroDriftCritical", "exp_alerts": []},
                    {"eval_time": "2m", "alertname": "MaestroDriftWarning", "exp_alerts": []},
                    {
                        "eval_time": "2m",
                        "alertname": "MaestroDriftCritical",
                        "exp_alerts": [fired("MaestroDriftCritical", "critical", "75%")],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    proc = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "tests.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
