"""TrainingRun -> the Kubernetes objects that run it. Pure: no kopf, no kubernetes, no I/O.

`render` is a function of the typed spec, explicit trainer settings and the run's ids
(which the reconciler gathered: the uid, the MLflow parent run, the Optuna study), so the
same inputs always give the same manifests; tests/golden/ holds one file per shape.

What runs where:

- a tuning run is an Indexed batch Job with `tuning.parallelism` pods; each pod is an
  Optuna worker loading the one study from the RDB storage (Optuna's distributed mode);
- PyTorch, TensorFlow and XGBoost runs are Kubeflow jobs (kubeflow.org/v1): one
  Master (Chief for TensorFlow) and `workers - 1` Workers;
- SKLearn and Generic runs, and every run when Kubeflow is switched off, are a batch Job
  with one pod.

Every object is owned by the TrainingRun (controller reference), so deleting the run
deletes its jobs, pods and Secret; its MLflow runs and Optuna study stay.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maestro.operators.api.trainingrun import (
    DISTRIBUTED_FRAMEWORKS,
    Framework,
    TrainingRun,
    TrainingRunSpec,
)
from maestro.operators.core import objects
from maestro.operators.core.objects import IMAGE_UID, MANAGED_BY, env_value, label_value
from maestro.operators.core.settings import OperatorConfig
from maestro.training import contract

Manifest = dict[str, Any]

LABEL_TRAININGRUN = "mlops.maestro.dev/trainingrun"
LABEL_TRAININGRUN_UID = "mlops.maestro.dev/trainingrun-uid"
DEFAULT_COMMAND = ("maestro", "train")
TRAINER_UID = IMAGE_UID
KUBEFLOW_API_VERSION = "kubeflow.org/v1"


@dataclass(frozen=True)
class JobKind:
    """The workload kind a run becomes, and where its pods' names come from."""

    api_version: str
    kind: str
    plural: str
    # Label the workload's controller puts on its pods with the job's name.
    pod_job_label: str
    # Kubeflow only: the replicaSpecs field and the container name the operator expects.
    replica_specs: str | None = None
    container: str = "trainer"
    leader: str | None = None

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


BATCH_JOB = JobKind("batch/v1", "Job", "jobs", "batch.kubernetes.io/job-name")
_KUBEFLOW_POD_LABEL = "training.kubeflow.org/job-name"
KUBEFLOW_JOBS = {
    Framework.PYTORCH: JobKind(
        KUBEFLOW_API_VERSION,
        "PyTorchJob",
        "pytorchjobs",
        _KUBEFLOW_POD_LABEL,
        "pytorchReplicaSpecs",
        "pytorch",
        "Master",
    ),
    Framework.TENSORFLOW: JobKind(
        KUBEFLOW_API_VERSION,
        "TFJob",
        "tfjobs",
        _KUBEFLOW_POD_LABEL,
        "tfReplicaSpecs",
        "tensorflow",
        "Chief",
    ),
    Framework.XGBOOST: JobKind(
        KUBEFLOW_API_VERSION,
        "XGBoostJob",
        "xgboostjobs",
        _KUBEFLOW_POD_LABEL,
        "xgbReplicaSpecs",
        "xgboost",
        "Master",
    ),
}
JOB_KINDS = (BATCH_JOB, *KUBEFLOW_JOBS.values())


FEAST_ENV = {
    "repo": contract.FEAST_REPO,
    "registry": contract.FEAST_REGISTRY,
    "redis": contract.FEAST_REDIS,
    "project": contract.FEAST_PROJECT,
}


@dataclass(frozen=True)
class TrainerSettings:
    """The operator settings that shape trainer workloads."""

    tracking_uri: str
    image: str
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str | None = None
    kubeflow: bool = True
    secret_key: str = "storage"
    # Feast settings by key (repo, registry, redis, project) for runs with a feature service.
    feast: Mapping[str, str] = field(default_factory=dict)
    # OTLP/HTTP collector the trainers may export spans to (the operator's own).
    otlp_endpoint: str | None = None

    @classmethod
    def from_config(cls, config: OperatorConfig) -> TrainerSettings:
        return cls(
            tracking_uri=config.mlflow_tracking_uri or "",
            image=config.trainer_image,
            pod_labels=dict(config.trainer_pod_labels),
            service_account=config.trainer_service_account,
            kubeflow=config.kubeflow,
            secret_key=config.optuna_secret_key,
            feast=dict(config.trainer_feast),
            otlp_endpoint=config.otlp_endpoint,
        )


@dataclass(frozen=True)
class RunIds:
    """Identity of one TrainingRun and of what the reconciler created for it."""

    namespace: str
    name: str
    uid: str
    experiment: str
    parent_run_id: str
    study: str | None = None
    # The W3C trace context of the reconcile that creates the job: its pods join that trace.
    traceparent: str | None = None


def job_kind(spec: TrainingRunSpec, kubeflow: bool) -> JobKind:
    # Trials are independent single-pod trainings sharing one study, whatever the framework.
    if spec.tuning is None and kubeflow and spec.framework in DISTRIBUTED_FRAMEWORKS:
        return KUBEFLOW_JOBS[spec.framework]
    return BATCH_JOB


def _dns_label(text: str) -> str:
    text = re.sub(r"[^a-z0-9-]", "-", text.lower())
    return text if text[:1].isalpha() else f"tr-{text}"


def job_name(name: str, uid: str) -> str:
    """The job's name: the run's name made a DNS label, plus a piece of its uid.

    At most 46 characters, so pod and Service names such as `<job>-worker-127` stay
    valid DNS labels, and a re-created run of the same name never adopts the old jobs.
    """
    return f"{_dns_label(name)[:40].rstrip('-')}-{uid[:5]}"


def secret_name(name: str, uid: str) -> str:
    return f"{job_name(name, uid)}-optuna"


def study_name(uid: str) -> str:
    return f"trainingrun-{uid}"


def labels(ids: RunIds) -> dict[str, str]:
    return {
        **MANAGED_BY,
        "app.kubernetes.io/component": "trainer",
        LABEL_TRAININGRUN: label_value(ids.name),
        LABEL_TRAININGRUN_UID: ids.uid,
    }


def owner_reference(ids: RunIds) -> dict[str, Any]:
    return objects.owner_reference(TrainingRun.INFO.kind, ids.name, ids.uid)


def _metadata(name: str, ids: RunIds) -> dict[str, Any]:
    return objects.metadata(name, ids.namespace, labels(ids), owner_reference(ids))


def trainer_env(
    spec: TrainingRunSpec, settings: TrainerSettings, ids: RunIds
) -> list[dict[str, Any]]:
    """The contract environment (maestro.training.contract) of every trainer container.

    Tuning workers also get JOB_COMPLETION_INDEX (contract.WORKER_INDEX) from the Job
    controller of their Indexed Job, and seed their samplers with it.
    """
    env = [
        env_value(contract.TRACKING_URI, settings.tracking_uri),
        env_value(contract.EXPERIMENT, ids.experiment),
        env_value(contract.TRAININGRUN, f"{ids.namespace}/{ids.name}"),
        env_value(contract.TRAININGRUN_UID, ids.uid),
        env_value(contract.PARENT_RUN_ID, ids.parent_run_id),
        env_value(contract.FRAMEWORK, spec.framework.value),
        env_value(contract.PARAMS, json.dumps(spec.params, sort_keys=True)),
    ]
    if spec.dataset is not None:
        env.append(env_value(contract.DATASET_URI, spec.dataset.uri))
        if spec.dataset.version is not None:
            env.append(env_value(contract.DATASET_VERSION, spec.dataset.version))
    if spec.feature_service is not None:
        env.append(env_value(contract.FEATURE_SERVICE, spec.feature_service))
        env += [
            env_value(FEAST_ENV[key], value)
            for key, value in sorted(settings.feast.items())
            if key in FEAST_ENV
        ]
    if spec.tuning is not None and ids.study is not None:
        env += [
            {
                "name": contract.OPTUNA_STORAGE,
                "valueFrom": {
                    "secretKeyRef": {
                        "name": secret_name(ids.name, ids.uid),
                        "key": settings.secret_key,
                    }
                },
            },
            env_value(contract.OPTUNA_STUDY, ids.study),
            env_value(
                contract.TUNING,
                json.dumps(
                    spec.tuning.model_dump(by_alias=True, mode="json", exclude_none=True),
                    sort_keys=True,
                ),
            ),
        ]
    env += objects.trace_env(ids.traceparent, settings.otlp_endpoint)
    # The root filesystem is read-only; libraries that cache under ~ write to /tmp.
    env.append(env_value("HOME", "/tmp"))
    return env


def _container(
    name: str, spec: TrainingRunSpec, settings: TrainerSettings, ids: RunIds
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": spec.image or settings.image,
        "command": list(spec.command or DEFAULT_COMMAND),
        "env": trainer_env(spec, settings, ids),
        "securityContext": objects.restricted_container_security_context(TRAINER_UID),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if spec.resources is not None:
        resources = spec.resources.model_dump(mode="json", exclude_none=True)
        if resources:
            container["resources"] = resources
    return container


def _pod_template(
    container: dict[str, Any],
    settings: TrainerSettings,
    ids: RunIds,
    restart_policy: str,
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "restartPolicy": restart_policy,
        # Trainers talk to MLflow and the Optuna storage, never to the API server.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": objects.restricted_pod_security_context(TRAINER_UID),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    metadata: dict[str, Any] = {"labels": {**settings.pod_labels, **labels(ids)}}
    if ids.traceparent:
        metadata["annotations"] = objects.trace_annotations(ids.traceparent)
    return {"metadata": metadata, "spec": pod_spec}


def render_secret(ids: RunIds, settings: TrainerSettings, storage_url: str) -> Manifest:
    """The run's own Secret holding the Optuna storage URL for its trainer pods."""
    encoded = base64.b64encode(storage_url.encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(secret_name(ids.name, ids.uid), ids),
        "type": "Opaque",
        "data": {settings.secret_key: encoded},
    }


def render_batch_job(spec: TrainingRunSpec, settings: TrainerSettings, ids: RunIds) -> Manifest:
    pods = spec.tuning.parallelism if spec.tuning is not None else 1
    container = _container("trainer", spec, settings, ids)
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": pods,
        "parallelism": pods,
        "backoffLimit": spec.backoff_limit,
        "template": _pod_template(container, settings, ids, "Never"),
    }
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    if spec.command is None:
        # Maestro's trainer exits with EXIT_BAD_INPUT when the spec cannot work (an unknown
        # feature service, a missing column): fail now rather than after every retry.
        job_spec["podFailurePolicy"] = {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": container["name"],
                        "operator": "In",
                        "values": [contract.EXIT_BAD_INPUT],
                    },
                }
            ]
        }
    return {
        "apiVersion": BATCH_JOB.api_version,
        "kind": BATCH_JOB.kind,
        "metadata": _metadata(job_name(ids.name, ids.uid), ids),
        "spec": job_spec,
    }


def kubeflow_restart_policy(spec: TrainingRunSpec) -> str:
    """The replicas' restartPolicy: Kubeflow's `ExitCode`, for Maestro's trainer and for a
    command of the run's own alike. An exit code from 1 to 127 (Maestro's trainer: 2, bad
    input; 1, training failed) fails the job at once and leaves its pods, so the run's
    reason names the replica that failed and its exit code (under `OnFailure` the training
    operator deletes every pod of the job once restarts pass backoffLimit, and the failed
    replica's exit is gone with its pod); a replica killed by a signal (128 and above: OOM,
    eviction) is recreated, counted against runPolicy.backoffLimit."""
    del spec  # the same for every run; kept as a function of the spec for the golden tests
    return "ExitCode"


def render_kubeflow_job(
    kind: JobKind, spec: TrainingRunSpec, settings: TrainerSettings, ids: RunIds
) -> Manifest:
    assert kind.replica_specs is not None and kind.leader is not None
    container = _container(kind.container, spec, settings, ids)
    policy = kubeflow_restart_policy(spec)
    # ExitCode: pods restart Never and the training operator itself decides: exit codes 1-127
    # fail the job at once, 128 and above (a signal: OOM kill, eviction) recreate the pod,
    # counted against runPolicy.backoffLimit.
    template = _pod_template(container, settings, ids, "Never" if policy == "ExitCode" else policy)
    replicas = {kind.leader: {"replicas": 1, "restartPolicy": policy, "template": template}}
    if spec.workers > 1:
        replicas["Worker"] = {
            "replicas": spec.workers - 1,
            "restartPolicy": policy,
            "template": copy.deepcopy(template),
        }
    run_policy: dict[str, Any] = {"backoffLimit": spec.backoff_limit, "cleanPodPolicy": "None"}
    if spec.active_deadline_seconds is not None:
        run_policy["activeDeadlineSeconds"] = spec.active_deadline_seconds
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": _metadata(job_name(ids.name, ids.uid), ids),
        "spec": {"runPolicy": run_policy, kind.replica_specs: replicas},
    }


def render_job(spec: TrainingRunSpec, settings: TrainerSettings, ids: RunIds) -> Manifest:
    kind = job_kind(spec, settings.kubeflow)
    if kind is BATCH_JOB:
        return render_batch_job(spec, settings, ids)
    return render_kubeflow_job(kind, spec, settings, ids)


def render(
    spec: TrainingRunSpec,
    settings: TrainerSettings,
    ids: RunIds,
    *,
    optuna_storage: str | None = None,
) -> list[Manifest]:
    """Everything the run needs, in apply order: the storage Secret first, then the job."""
    objects: list[Manifest] = []
    if spec.tuning is not None:
        if optuna_storage is None or ids.study is None:
            raise ValueError("a tuning run needs the Optuna storage URL and its study name")
        objects.append(render_secret(ids, settings, optuna_storage))
    objects.append(render_job(spec, settings, ids))
    return objects
