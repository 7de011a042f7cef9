"""Distributed TrainingRuns through Kubeflow's real training operator on the local platform.

The TrainingRun operator (deployed from manifests/overlays/local) renders a PyTorchJob or
XGBoostJob; the training operator (a platform component built from its Go module) makes
the Master and Worker pods and their headless Services; the pod runner runs each pod as a
process of its own, whose resolver asks CoreDNS, so MASTER_ADDR=<job>-master-0 reaches
the Master's process. Assertions read the TrainingRun's status, the pods, both replicas'
logs and MLflow.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from mlflow import MlflowClient

from maestro.localplatform.cluster import ClusterConfig
from tests.cluster.objects import apply, get, items, ready
from tests.cluster.test_trainingrun import IRIS, owned_job, training_run, wait_phase
from tests.conftest import Cluster

# The runs that train (DDP 48 s, XGBoost 18 s on 2 cores) and the TFJob (whose use of tfjobs
# tests/cluster/test_least_privilege.py lists as unexercised) are in `make test-distributed`;
# the failing worker and bad input (about 10 s each) stay in `make test`: real PyTorchJobs
# through the training operator in every session. (Under OnFailure the failing worker once
# lost its reason in a full session: at the backoff limit the training operator deletes
# every pod of the job, the Worker's with its exit code; replicas now run under ExitCode.)
pytestmark = pytest.mark.cluster

KUBEFLOW_JOB = "training.kubeflow.org/job-name"


@pytest.fixture
def mlflow(mlflow_url: str) -> MlflowClient:
    return MlflowClient(mlflow_url, mlflow_url)


def replica_pods(cluster: Cluster, namespace: str, job: dict[str, Any]) -> dict[str, Any]:
    """The job's pods by replica (`master-0`, `worker-0`, ...)."""
    pods = items(cluster, namespace, "pods", f"{KUBEFLOW_JOB}={job['metadata']['name']}")
    prefix = f"{job['metadata']['name']}-"
    return {p["metadata"]["name"].removeprefix(prefix): p for p in pods}


def log_of(pod: dict[str, Any], container: str) -> str:
    return ClusterConfig().pod_log(pod, container).read_text()


@pytest.mark.distributed
def test_pytorch_ddp_across_two_pods_through_the_training_operator(
    deployed_operator: ClusterConfig, cluster: Cluster, namespace: str, mlflow: MlflowClient
) -> None:
    model_name = f"ddp-{namespace}"
    apply(
        cluster,
        namespace,
        training_run(
            "ddp",
            framework="PyTorch",
            workers=2,
            params={"epochs": 20, "hidden_sizes": "16", "batch_size": 16},
            dataset=IRIS,
            registerAs={"name": model_name},
            backoffLimit=0,
        ),
    )
    run = wait_phase(deployed_operator, cluster, namespace, "ddp", ("Succeeded", "Failed"), 240)
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    job = owned_job(cluster, namespace, run)
    assert job["kind"] == "PyTorchJob"
    # The training operator, not a test, completed it: its own conditions and counts.
    conditions = {c["type"]: c for c in job["status"]["conditions"]}
    assert conditions["Succeeded"]["reason"] == "PyTorchJobSucceeded", conditions
    assert job["status"]["replicaStatuses"]["Master"]["succeeded"] == 1
    name = job["metadata"]["name"]
    service = get(cluster, namespace, "service", f"{name}-master-0")
    assert service is not None and service["spec"]["clusterIP"] == "None"

    pods = replica_pods(cluster, namespace, job)
    assert set(pods) == {"master-0", "worker-0"}, list(pods)
    master, worker = pods["master-0"], pods["worker-0"]
    assert master["status"]["podIP"] != worker["status"]["podIP"]
    # The Worker waited for the Master's name in the operator's init container.
    (init,) = worker["status"]["initContainerStatuses"]
    assert init["name"] == "init-pytorch" and init["state"]["terminated"]["exitCode"] == 0
    logs = {rank: log_of(pod, "pytorch") for rank, pod in ((0, master), (1, worker))}
    for rank, log in logs.items():
        assert f"rank {rank} of 2 joined the gloo process group at {name}-master-0:23456" in log
    # Both replicas logged the same all-reduced loss each epoch and the same final weights.
    collective = {
        rank: re.findall(r"epoch (\d+) all_reduce over gloo: train loss ([0-9.]+) on (\d+)", log)
        for rank, log in logs.items()
    }
    assert len(collective[0]) == 20 and collective[0] == collective[1], collective
    digests = {
        rank: re.findall(r"parameters sha256 ([0-9a-f]{64})", log) for rank, log in logs.items()
    }
    assert digests[0] and digests[0] == digests[1], digests

    # Rank 0 alone logged to the run the operator created, and the model is the candidate.
    version = mlflow.get_model_version_by_alias(model_name, "candidate")
    assert version.version == status["modelVersion"]
    assert version.run_id == status["mlflowRunId"]
    tags = mlflow.get_run(status["mlflowRunId"]).data.tags
    assert tags["maestro.world_size"] == "2"
    assert tags["maestro.torch.device"] == "cpu"
    assert tags["maestro.torch.parameters_sha256"] == digests[0][0]
    assert status["metrics"]["accuracy"] > 0.7, status["metrics"]


def test_a_failing_worker_fails_the_run_with_the_pods_reason(
    deployed_operator: ClusterConfig, cluster: Cluster, namespace: str
) -> None:
    script = (
        "import os, sys, time\n"
        "if os.environ['RANK'] != '0':\n"
        "    print('worker gives up'); sys.exit(3)\n"
        "time.sleep(60)\n"
    )
    apply(
        cluster,
        namespace,
        training_run(
            "broken",
            framework="PyTorch",
            workers=2,
            command=["python", "-c", script],
            # Above 0: at backoffLimit 0 the training operator (v1.8.1) may take the worker's
            # failure past the limit first and delete every pod, the worker's exit with them
            # (seen once); under ExitCode an exit of 3 fails the job at once either way.
            backoffLimit=2,
        ),
    )
    run = wait_phase(deployed_operator, cluster, namespace, "broken", ("Succeeded", "Failed"), 120)
    assert run["status"]["phase"] == "Failed", run["status"]
    condition = ready(run)
    assert condition["status"] == "False"
    assert condition["reason"] in ("BackoffLimitExceeded", "JobFailed"), condition
    job = owned_job(cluster, namespace, run)
    assert (
        f"pod {job['metadata']['name']}-worker-0: container pytorch exited with code 3"
        in (condition["message"])
    ), condition["message"]


def test_bad_input_fails_the_pytorch_job_at_once_without_retries(
    deployed_operator: ClusterConfig, cluster: Cluster, namespace: str
) -> None:
    apply(
        cluster,
        namespace,
        training_run(
            "typo",
            framework="PyTorch",
            workers=2,
            params={"epochs": "many"},
            dataset=IRIS,
            backoffLimit=3,
        ),
    )
    run = wait_phase(deployed_operator, cluster, namespace, "typo", ("Succeeded", "Failed"), 120)
    assert run["status"]["phase"] == "Failed", run["status"]
    condition = ready(run)
    assert condition["reason"] == "JobFailed", condition
    assert "exited with code 2" in condition["message"], condition["message"]
    assert "params.epochs" in condition["message"], condition["message"]
    job = owned_job(cluster, namespace, run)
    assert {r["restartPolicy"] for r in job["spec"]["pytorchReplicaSpecs"].values()} == {"ExitCode"}
    # Exit code 2 is not retryable under ExitCode: no pod was restarted or recreated.
    for pod in replica_pods(cluster, namespace, job).values():
        for c in pod["status"].get("containerStatuses") or []:
            assert c["restartCount"] == 0, json.dumps(pod["status"])


@pytest.mark.distributed
def test_xgboost_across_two_pods_through_the_training_operator(
    deployed_operator: ClusterConfig, cluster: Cluster, namespace: str, mlflow: MlflowClient
) -> None:
    model_name = f"xgb-{namespace}"
    apply(
        cluster,
        namespace,
        training_run(
            "xgb",
            framework="XGBoost",
            workers=2,
            params={"n_estimators": 10, "max_depth": 3},
            dataset=IRIS,
            registerAs={"name": model_name},
            backoffLimit=0,
        ),
    )
    run = wait_phase(deployed_operator, cluster, namespace, "xgb", ("Succeeded", "Failed"), 240)
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    job = owned_job(cluster, namespace, run)
    assert job["kind"] == "XGBoostJob"
    conditions = {c["type"]: c for c in job["status"]["conditions"]}
    assert conditions["Succeeded"]["reason"] == "XGBoostJobSucceeded", conditions
    pods = replica_pods(cluster, namespace, job)
    assert set(pods) == {"master-0", "worker-0"}, list(pods)
    logs = {rank: log_of(pods[r], "xgboost") for rank, r in ((0, "master-0"), (1, "worker-0"))}
    for rank, log in logs.items():
        assert f"rank {rank} of 2 joined XGBoost's collective" in log, log[-3000:]
    digests = {
        rank: re.findall(r"booster sha256 ([0-9a-f]{64}) after allreduce", log)
        for rank, log in logs.items()
    }
    assert digests[0] and digests[0] == digests[1], digests
    version = mlflow.get_model_version_by_alias(model_name, "candidate")
    assert version.run_id == status["mlflowRunId"]
    assert status["metrics"]["accuracy"] > 0.8, status["metrics"]


@pytest.mark.distributed
def test_a_tfjob_starts_its_replicas_with_tf_config(
    deployed_operator: ClusterConfig, cluster: Cluster, namespace: str
) -> None:
    """TensorFlow is not installed: a command of the run's own reads TF_CONFIG and exits."""
    script = "import json, os; print('TF_CONFIG ' + os.environ['TF_CONFIG'])"
    apply(
        cluster,
        namespace,
        training_run(
            "tf",
            framework="TensorFlow",
            workers=2,
            command=["python", "-c", script],
            backoffLimit=0,
        ),
    )
    run = wait_phase(deployed_operator, cluster, namespace, "tf", ("Succeeded", "Failed"), 120)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    job = owned_job(cluster, namespace, run)
    assert job["kind"] == "TFJob"
    pods = replica_pods(cluster, namespace, job)
    assert set(pods) == {"chief-0", "worker-0"}, list(pods)
    name = job["metadata"]["name"]
    for replica, (task, index) in (("chief-0", ("chief", 0)), ("worker-0", ("worker", 0))):
        log = log_of(pods[replica], "tensorflow")
        line = next(x for x in log.splitlines() if x.startswith("TF_CONFIG "))
        config = json.loads(line.removeprefix("TF_CONFIG "))
        assert config["task"] == {"type": task, "index": index}, config
        assert config["cluster"]["chief"] == [f"{name}-chief-0.{namespace}.svc:2222"], config
        assert config["cluster"]["worker"] == [f"{name}-worker-0.{namespace}.svc:2222"], config
