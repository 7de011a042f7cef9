"""TrainingRun renderers against golden YAML files (tests/golden/trainingrun/).

Regenerate after an intended change with MAESTRO_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from maestro.operators.api.trainingrun import TrainingRunSpec
from maestro.operators.trainingrun.render import (
    BATCH_JOB,
    KUBEFLOW_JOBS,
    RunIds,
    TrainerSettings,
    job_kind,
    job_name,
    label_value,
    render,
    secret_name,
)
from maestro.security.pod_security import restricted_violations
from maestro.training import contract

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "trainingrun"
UID = "0b7c5a1e-3f4d-4c1b-9a2e-5d6f7a8b9c0d"
SETTINGS = TrainerSettings(
    tracking_uri="http://mlflow.mlops:5000",
    image="ghcr.io/maestro-ml/maestro:0.1.0",
    pod_labels={"maestro.dev/local-run": "true"},
)
STORAGE = "postgresql://optuna:secret@db.mlops:5432/optuna"

BASE: dict[str, Any] = {
    "params": {"n_estimators": 50, "max_depth": 4},
    "dataset": {"uri": "sklearn://iris", "version": "1"},
    "mlflow": {"experiment": "iris"},
    "backoffLimit": 2,
    "activeDeadlineSeconds": 600,
    "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
}
TUNING = {
    "trials": 8,
    "parallelism": 2,
    "objectives": [{"metric": "accuracy", "direction": "maximize"}],
    "space": {"max_depth": {"type": "int", "low": 2, "high": 8}},
}
CASES: dict[str, dict[str, Any]] = {
    "sklearn": {**BASE, "framework": "SKLearn", "registerAs": {"name": "iris"}},
    "tuning": {**BASE, "framework": "SKLearn", "tuning": TUNING, "featureService": "iris_fs"},
    "pytorch": {
        **BASE,
        "framework": "PyTorch",
        "workers": 3,
        "image": "registry.example/trainers/torch:2.4",
        "command": ["python", "-m", "trainer.ddp"],
    },
    "tensorflow": {**BASE, "framework": "TensorFlow", "workers": 2},
    "xgboost": {**BASE, "framework": "XGBoost"},
    "generic": {"framework": "Generic", "command": ["python", "-c", "print('hi')"]},
}


# The PyTorch case is traced: its pods continue the trace of the reconcile that made the job.
TRACED = {"pytorch": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}


def ids(spec: TrainingRunSpec, traceparent: str | None = None) -> RunIds:
    return RunIds(
        namespace="ml",
        name="iris-train",
        uid=UID,
        experiment="iris",
        parent_run_id="a1b2c3d4e5f6",
        study=f"trainingrun-{UID}" if spec.tuning else None,
        traceparent=traceparent,
    )


def rendered(case: str) -> list[dict[str, Any]]:
    spec = TrainingRunSpec.model_validate(CASES[case])
    settings = SETTINGS
    if case in TRACED:
        settings = replace(SETTINGS, otlp_endpoint="http://jaeger-collector.observability:4318")
    return render(spec, settings, ids(spec, TRACED.get(case)), optuna_storage=STORAGE)


@pytest.mark.parametrize("case", CASES)
def test_render_matches_golden(case: str) -> None:
    text = yaml.safe_dump_all(rendered(case), sort_keys=False)
    path = GOLDEN / f"{case}.yaml"
    if os.environ.get("MAESTRO_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with MAESTRO_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{case} differs from {path}"


@pytest.mark.parametrize("case", CASES)
def test_every_pod_template_meets_the_restricted_profile(case: str) -> None:
    job = rendered(case)[-1]
    if job["kind"] == "Job":
        templates = [job["spec"]["template"]]
    else:
        replica_specs = next(v for k, v in job["spec"].items() if k.endswith("ReplicaSpecs"))
        templates = [r["template"] for r in replica_specs.values()]
    for template in templates:
        assert restricted_violations(template["spec"]) == []
        assert template["spec"]["automountServiceAccountToken"] is False
        assert template["metadata"]["labels"]["maestro.dev/local-run"] == "true"


@pytest.mark.parametrize("case", CASES)
def test_everything_is_owned_by_the_run(case: str) -> None:
    for obj in rendered(case):
        (owner,) = obj["metadata"]["ownerReferences"]
        assert owner["uid"] == UID and owner["controller"] and owner["blockOwnerDeletion"]
        assert obj["metadata"]["labels"]["mlops.maestro.dev/trainingrun"] == "iris-train"


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize(
    ("case", "fails_fast"),
    [("sklearn", True), ("tuning", True), ("generic", False)],
)
def test_maestro_trainers_bad_input_fails_the_job_without_retries(
    case: str, fails_fast: bool
) -> None:
    job = rendered(case)[-1]
    if not fails_fast:  # a command of the user's own: its exit codes mean what it says
        assert "podFailurePolicy" not in job["spec"]
        return
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"  # required by the API
    assert job["spec"]["podFailurePolicy"]["rules"] == [
        {
            "action": "FailJob",
            "onExitCodes": {
                "containerName": "trainer",
                "operator": "In",
                "values": [contract.EXIT_BAD_INPUT],
            },
        }
    ]


@pytest.mark.parametrize(
    ("case", "policy", "pod_policy"),
    [
        ("tensorflow", "ExitCode", "Never"),
        ("xgboost", "ExitCode", "Never"),
        ("pytorch", "ExitCode", "Never"),
    ],
    ids=["maestro-trainer-tf", "maestro-trainer-xgb", "own-command"],
)
def test_kubeflow_replicas_fail_at_once_on_the_trainers_exit_codes(
    case: str, policy: str, pod_policy: str
) -> None:
    """ExitCode for every run: exit 1-127 fails the job at once and keeps its pods (the
    reason can name the replica); a replica killed by a signal is recreated."""
    job = rendered(case)[-1]
    replica_specs = next(v for k, v in job["spec"].items() if k.endswith("ReplicaSpecs"))
    for replica in replica_specs.values():
        assert replica["restartPolicy"] == policy
        assert replica["template"]["spec"]["restartPolicy"] == pod_policy


def test_tuning_is_an_indexed_job_of_parallel_workers_sharing_the_study() -> None:
    secret, job = rendered("tuning")
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2
    env = env_of(job["spec"]["template"]["spec"]["containers"][0])
    # The storage URL (with its password) reaches the pods only through the Secret.
    assert env[contract.OPTUNA_STORAGE] == {
        "secretKeyRef": {"name": secret["metadata"]["name"], "key": "storage"}
    }
    assert STORAGE not in yaml.safe_dump(job)
    assert base64.b64decode(secret["data"]["storage"]).decode() == STORAGE
    assert env[contract.OPTUNA_STUDY] == f"trainingrun-{UID}"
    assert yaml.safe_load(env[contract.TUNING])["trials"] == 8
    assert env[contract.PARENT_RUN_ID] == "a1b2c3d4e5f6"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["maestro", "train"]


def test_pytorch_has_one_master_and_the_other_workers() -> None:
    (job,) = rendered("pytorch")
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert {k: v["replicas"] for k, v in replicas.items()} == {"Master": 1, "Worker": 2}
    for replica in replicas.values():
        (container,) = replica["template"]["spec"]["containers"]
        assert container["name"] == "pytorch"
        assert container["image"] == "registry.example/trainers/torch:2.4"
    assert job["spec"]["runPolicy"] == {
        "backoffLimit": 2,
        "cleanPodPolicy": "None",
        "activeDeadlineSeconds": 600,
    }


def test_without_kubeflow_or_with_tuning_a_batch_job_runs() -> None:
    pytorch = TrainingRunSpec.model_validate(CASES["pytorch"] | {"workers": 1})
    assert job_kind(pytorch, kubeflow=True) is KUBEFLOW_JOBS[pytorch.framework]
    assert job_kind(pytorch, kubeflow=False) is BATCH_JOB
    tuned = TrainingRunSpec.model_validate(CASES["pytorch"] | {"workers": 1, "tuning": TUNING})
    assert job_kind(tuned, kubeflow=True) is BATCH_JOB


def test_a_tuning_run_without_storage_is_refused() -> None:
    spec = TrainingRunSpec.model_validate(CASES["tuning"])
    with pytest.raises(ValueError, match="Optuna storage"):
        render(spec, SETTINGS, ids(spec))


@pytest.mark.parametrize(
    "name",
    ["iris", "a" * 253, "9lives.v2", "x" * 40 + "-" + "y" * 10],
    ids=["short", "longest", "digit-and-dot", "dash-at-cut"],
)
def test_names_stay_valid_dns_labels(name: str) -> None:
    import re

    for derived in (job_name(name, UID), secret_name(name, UID)):
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", derived), derived
        assert len(derived) <= 53
    assert len(label_value(name)) <= 63
    assert job_name(name, UID) != job_name(name, "ffffffff-0000")


@pytest.mark.parametrize(
    ("case", "feast", "expected"),
    [
        ("tuning", {}, {}),
        (
            "tuning",
            {"registry": "s3://features/registry.db", "redis": "redis.mlops:6379", "bogus": "x"},
            {
                contract.FEAST_REGISTRY: "s3://features/registry.db",
                contract.FEAST_REDIS: "redis.mlops:6379",
            },
        ),
        ("sklearn", {"redis": "redis.mlops:6379"}, {}),
    ],
    ids=["feature-service-defaults", "feature-service-configured", "no-feature-service"],
)
def test_feast_settings_reach_only_runs_with_a_feature_service(
    case: str, feast: dict[str, str], expected: dict[str, str]
) -> None:
    spec = TrainingRunSpec.model_validate(CASES[case])
    settings = TrainerSettings(SETTINGS.tracking_uri, SETTINGS.image, feast=feast)
    job = next(
        o for o in render(spec, settings, ids(spec), optuna_storage=STORAGE) if o["kind"] == "Job"
    )
    env = env_of(job["spec"]["template"]["spec"]["containers"][0])
    feast_env = {k: v for k, v in env.items() if k.startswith("MAESTRO_FEAST_")}
    assert feast_env == expected
