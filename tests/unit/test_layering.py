"""Pure modules stay pure; the CLI stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

PURE = [
    "maestro.operators.api",
    "maestro.operators.api.crdgen",
    "maestro.operators.core.conditions",
    "maestro.operators.core.verdict",
    "maestro.operators.core.status",
    "maestro.operators.core.settings",
    "maestro.operators.core.references",
    "maestro.operators.trainingrun.render",
    "maestro.operators.trainingrun.decide",
    "maestro.operators.modeldeployment.render",
    "maestro.operators.modeldeployment.decide",
    "maestro.operators.abtest.decide",
    "maestro.operators.driftcheck.decide",
    "maestro.operators.cli",
    "maestro.operators.rulegen",
    "maestro.operators.driftcheck.schedule",
    "maestro.monitoring.metric_names",
    "maestro.monitoring.alerts",
    "maestro.monitoring.slo",
    "maestro.monitoring.dashboards",
]


def imported_after(statement: str) -> set[str]:
    code = f"{statement}\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return {name.split(".")[0] for name in out.split()}


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_neither_kopf_nor_kubernetes(module: str) -> None:
    assert not {"kopf", "kubernetes"} & imported_after(f"import {module}")


def test_metric_names_import_nothing() -> None:
    """The one module every side imports for metric names drags nothing in with it."""
    assert imported_after("import maestro.monitoring.metric_names") <= imported_after("pass") | {
        "maestro"
    }


def test_cli_help_does_not_import_the_operator() -> None:
    modules = imported_after(
        "from maestro.operators.cli import build_parser\nbuild_parser().format_help()"
    )
    assert "kopf" not in modules


def test_operator_help_lists_the_options() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "maestro.operators.cli", "operator", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in ("--namespace", "--peering", "--standalone", "--liveness"):
        assert option in out


def test_registry_builds_with_all_handlers() -> None:
    from maestro.operators.core.settings import OperatorConfig
    from maestro.operators.runtime import build_registry

    registry = build_registry(OperatorConfig(standalone=True))
    watched = {h.id for h in registry._watching.get_all_handlers()}
    # TrainingRuns also follow the jobs they own (batch and the three Kubeflow kinds),
    # ModelDeployments the ABTests on them (whose split they render; the objects they own
    # come from watches of their own, operators.core.object_cache); ABTests and
    # DriftChecks are re-checked when the objects they name change, DriftChecks also when
    # one of their Jobs does (and forget their gauges when they go).
    assert watched == {
        "modeldeployment-abtests",
        "trainingrun",
        "modeldeployment",
        "abtest",
        "abtest-modeldeployments",
        "driftcheck",
        "driftcheck-modeldeployments",
        "driftcheck-trainingruns",
        "driftcheck-jobs",
        "driftcheck-gone",
        "trainingrun-jobs",
        "trainingrun-pytorchjobs",
        "trainingrun-tfjobs",
        "trainingrun-xgboostjobs",
    }
    # Finalizers block namespace deletion while the operator is down: none may be needed.
    assert not registry._spawning.get_all_handlers()
    assert not registry._changing.get_all_handlers()


def test_the_operator_loads_mlflow_and_optuna_only_when_a_run_needs_them() -> None:
    modules = imported_after("import maestro.operators.runtime")
    assert not {"mlflow", "optuna", "sqlalchemy"} & modules
