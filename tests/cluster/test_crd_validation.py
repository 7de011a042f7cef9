"""The generated CRD schemas reject bad input at the API server, naming the field.

Each case starts from a minimal valid object of its kind, changes one thing, and expects
`kubectl apply` to fail with a message that contains the offending field's path.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"
API_VERSION = "mlops.maestro.dev/v1alpha1"


class Cluster(Protocol):
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


MINIMAL: dict[str, dict[str, Any]] = {
    "TrainingRun": {"framework": "SKLearn"},
    "ModelDeployment": {"model": {"uri": "models:/iris/1"}},
    "ABTest": {
        "deployment": "iris",
        "challenger": {"model": {"uri": "models:/iris/2"}},
        "metric": "conversion",
    },
    "DriftCheck": {"deployment": "iris", "reference": {"uri": "s3://data/iris.parquet"}},
}

TUNING: dict[str, Any] = {
    "trials": 10,
    "parallelism": 2,
    "objectives": [{"metric": "accuracy", "direction": "maximize"}],
    "space": {"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}},
}


def set_path(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Mutation setting a dotted path (creating maps on the way); value DELETE removes it."""

    def mutate(spec: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = spec
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = copy.deepcopy(value)

    return mutate


DELETE = object()


@dataclass(frozen=True)
class Bad:
    kind: str
    id: str
    mutations: tuple[Callable[[dict[str, Any]], None], ...]
    field: str  # must appear in the API server's error message


def bad(kind: str, id: str, field: str, *mutations: Callable[[dict[str, Any]], None]) -> Any:
    return pytest.param(Bad(kind, id, mutations, field), id=f"{kind}-{id}")


CASES = [
    # ModelDeployment
    bad("ModelDeployment", "uri-scheme", "spec.model.uri", set_path("model.uri", "http://x/m")),
    bad("ModelDeployment", "uri-missing", "spec.model.uri", set_path("model", {})),
    bad(
        "ModelDeployment",
        "strategy-type",
        "spec.strategy.type",
        set_path("strategy.type", "Linear"),
    ),
    bad(
        "ModelDeployment",
        "canary-descending",
        "spec.strategy.canary.steps",
        set_path("strategy", {"type": "Canary", "canary": {"steps": [50, 10]}}),
    ),
    bad(
        "ModelDeployment",
        "canary-duplicate-step",
        "spec.strategy.canary.steps",
        set_path("strategy", {"type": "Canary", "canary": {"steps": [10, 10, 100]}}),
    ),
    bad(
        "ModelDeployment",
        "canary-over-100",
        "spec.strategy.canary.steps",
        set_path("strategy", {"type": "Canary", "canary": {"steps": [10, 150]}}),
    ),
    bad(
        "ModelDeployment",
        "canary-with-rolling",
        "spec.strategy.canary",
        set_path("strategy", {"type": "Rolling", "canary": {"steps": [10]}}),
    ),
    bad(
        "ModelDeployment",
        "shadow-zero",
        "spec.strategy.shadow.percent",
        set_path("strategy", {"type": "Shadow", "shadow": {"percent": 0}}),
    ),
    bad(
        "ModelDeployment",
        "min-over-max",
        "spec.replicas.min",
        set_path("replicas", {"min": 5, "max": 2}),
    ),
    bad(
        "ModelDeployment",
        "cpu-target",
        "spec.autoscaling.targetCPUUtilization",
        set_path("autoscaling.targetCPUUtilization", 150),
    ),
    bad(
        "ModelDeployment",
        "scale-down-window",
        "spec.autoscaling.behavior.scaleDown.stabilizationWindow",
        set_path(
            "autoscaling.behavior.scaleDown",
            {"stabilizationWindow": "90m", "maxPercent": 50, "maxPods": 1, "period": "60s"},
        ),
    ),
    bad(
        "ModelDeployment",
        "scale-up-period-days",
        "spec.autoscaling.behavior.scaleUp.period",
        set_path(
            "autoscaling.behavior.scaleUp",
            {"stabilizationWindow": "0s", "maxPercent": 100, "maxPods": 4, "period": "1d"},
        ),
    ),
    bad(
        "ModelDeployment",
        "env-name",
        "spec.secrets[0].env",
        set_path("secrets", [{"vaultPath": "secret/data/x", "key": "k", "env": "1-BAD"}]),
    ),
    bad(
        "ModelDeployment",
        "quantity",
        "spec.resources.requests",
        set_path("resources", {"requests": {"cpu": "lots"}}),
    ),
    # TrainingRun
    bad("TrainingRun", "framework", "spec.framework", set_path("framework", "Keras")),
    bad("TrainingRun", "zero-workers", "spec.workers", set_path("workers", 0)),
    bad("TrainingRun", "sklearn-distributed", "spec.workers", set_path("workers", 4)),
    bad(
        "TrainingRun",
        "parallelism-over-trials",
        "spec.tuning.parallelism",
        set_path("tuning", {**TUNING, "trials": 2, "parallelism": 5}),
    ),
    bad(
        "TrainingRun",
        "low-above-high",
        "spec.tuning.space[lr].low",
        set_path("tuning", {**TUNING, "space": {"lr": {"type": "float", "low": 1, "high": 0.1}}}),
    ),
    bad(
        "TrainingRun",
        "categorical-without-choices",
        "spec.tuning.space[opt].choices",
        set_path("tuning", {**TUNING, "space": {"opt": {"type": "categorical"}}}),
    ),
    bad(
        "TrainingRun",
        "param-type",
        "spec.tuning.space.lr.type",
        set_path("tuning", {**TUNING, "space": {"lr": {"type": "normal", "low": 0, "high": 1}}}),
    ),
    bad(
        "TrainingRun",
        "direction",
        "spec.tuning.objectives[0].direction",
        set_path("tuning", {**TUNING, "objectives": [{"metric": "acc", "direction": "up"}]}),
    ),
    bad(
        "TrainingRun",
        "sampler",
        "spec.tuning.sampler",
        set_path("tuning", {**TUNING, "sampler": "Grid"}),
    ),
    bad(
        "TrainingRun",
        "objectives-missing",
        "spec.tuning.objectives",
        set_path("tuning", {k: v for k, v in TUNING.items() if k != "objectives"}),
    ),
    bad(
        "TrainingRun",
        "cost-weight-multi-objective",
        "spec.tuning.costWeight",
        set_path(
            "tuning",
            {
                **TUNING,
                "costWeight": 0.5,
                "objectives": [{"metric": "acc"}, {"metric": "latency", "direction": "minimize"}],
            },
        ),
    ),
    # ABTest
    bad("ABTest", "deployment-missing", "spec.deployment", set_path("deployment", DELETE)),
    bad(
        "ABTest",
        "challenger-uri",
        "spec.challenger.model.uri",
        set_path("challenger.model.uri", "ftp://models/iris"),
    ),
    bad("ABTest", "traffic-100", "spec.trafficPercent", set_path("trafficPercent", 100)),
    bad("ABTest", "traffic-0", "spec.trafficPercent", set_path("trafficPercent", 0)),
    bad("ABTest", "alpha-zero", "spec.alpha", set_path("alpha", 0)),
    bad("ABTest", "alpha-over-half", "spec.alpha", set_path("alpha", 0.6)),
    bad("ABTest", "power-one", "spec.power", set_path("power", 1.0)),
    bad("ABTest", "duration", "spec.maxDuration", set_path("maxDuration", "3 days")),
    bad("ABTest", "sticky-without-key", "spec.split.key", set_path("split", {"mode": "Sticky"})),
    bad("ABTest", "bandit-not-object", "spec.bandit", set_path("bandit", True)),
    # DriftCheck
    bad(
        "DriftCheck",
        "warning-above-critical",
        "spec.thresholds.warning",
        set_path("thresholds", {"warning": 0.6, "critical": 0.4}),
    ),
    bad(
        "DriftCheck",
        "critical-over-1",
        "spec.thresholds.critical",
        set_path("thresholds.critical", 1.5),
    ),
    bad("DriftCheck", "cron", "spec.schedule", set_path("schedule", "every hour")),
    bad(
        "DriftCheck",
        "current-both",
        "spec.current",
        set_path("current", {"window": "24h", "uri": "s3://data/now.parquet"}),
    ),
    bad("DriftCheck", "current-neither", "spec.current", set_path("current", {})),
    bad("DriftCheck", "window", "spec.current.window", set_path("current", {"window": "a day"})),
    bad("DriftCheck", "stat-test", "spec.statTest", set_path("statTest", "ttest")),
    bad("DriftCheck", "reference-neither", "spec.reference", set_path("reference", {})),
    bad("DriftCheck", "deployment-name", "spec.deployment", set_path("deployment", "Not_A_Name")),
]

TYPOS = [
    pytest.param(
        "ModelDeployment",
        {"replica": {"min": 1}},
        'unknown field "spec.replica"',
        id="ModelDeployment",
    ),
    pytest.param("TrainingRun", {"worker": 2}, 'unknown field "spec.worker"', id="TrainingRun"),
    pytest.param(
        "ABTest", {"trafficPercentage": 10}, 'unknown field "spec.trafficPercentage"', id="ABTest"
    ),
    pytest.param(
        "DriftCheck",
        {"thresholds": {"warn": 0.2}},
        'unknown field "spec.thresholds.warn"',
        id="DriftCheck",
    ),
]


def manifest(kind: str, name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
    )


def apply(cluster: Cluster, namespace: str, text: str) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl(
        "apply", "--validate=strict", "-n", namespace, "-f", "-", input=text, check=False
    )


@pytest.mark.parametrize("case", CASES)
def test_invalid_spec_is_rejected_naming_the_field(
    cluster: Cluster, namespace: str, case: Bad
) -> None:
    spec = copy.deepcopy(MINIMAL[case.kind])
    for mutate in case.mutations:
        mutate(spec)

    proc = apply(cluster, namespace, manifest(case.kind, "bad", spec))

    assert proc.returncode != 0, f"accepted: {json.dumps(spec)}\n{proc.stdout}"
    assert case.field in proc.stderr, proc.stderr
    stored = cluster.kubectl("get", case.kind.lower(), "-n", namespace, "-o", "name")
    assert stored.stdout.strip() == ""


@pytest.mark.parametrize(("kind", "typo", "message"), TYPOS)
def test_unknown_field_is_rejected_by_strict_validation(
    cluster: Cluster, namespace: str, kind: str, typo: dict[str, Any], message: str
) -> None:
    spec = {**copy.deepcopy(MINIMAL[kind]), **typo}
    proc = apply(cluster, namespace, manifest(kind, "typo", spec))
    assert proc.returncode != 0, proc.stdout
    assert message in proc.stderr, proc.stderr


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_minimal_spec_is_accepted_and_defaulted(
    cluster: Cluster, namespace: str, kind: str
) -> None:
    apply(cluster, namespace, manifest(kind, "minimal", MINIMAL[kind])).check_returncode()
    stored = json.loads(
        cluster.kubectl("get", kind.lower(), "minimal", "-n", namespace, "-o", "json").stdout
    )["spec"]
    expected_defaults = {
        "TrainingRun": {"workers": 1, "backoffLimit": 3, "mlflow": {}},
        "ModelDeployment": {
            "strategy": {"type": "Rolling"},
            "replicas": {"min": 1, "max": 3},
            "port": 8080,
        },
        "ABTest": {"trafficPercent": 50, "alpha": 0.05, "power": 0.8, "maxDuration": "168h"},
        "DriftCheck": {
            "thresholds": {"warning": 0.3, "critical": 0.5},
            "current": {"window": "24h"},
            "statTest": "auto",
        },
    }[kind]
    for key, value in expected_defaults.items():
        assert stored[key] == value, (key, stored)


def test_examples_are_accepted_strictly(cluster: Cluster, namespace: str) -> None:
    proc = cluster.kubectl(
        "apply", "--validate=strict", "-n", namespace, "-k", str(EXAMPLES), check=False
    )
    assert proc.returncode == 0, proc.stderr
    names = cluster.kubectl("get", "maestro", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(n.split(".")[0] for n in names) == [
        "abtest",
        "driftcheck",
        "modeldeployment",
        "trainingrun",
    ]
