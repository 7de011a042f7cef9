"""DriftCheck manifests, pure: the CronJob that runs `maestro drift run` on the schedule,
the PrometheusRule that alerts on the drift share the operator exports, and the TrainingRun
a critical drift starts from the template."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maestro.monitoring import contract as drift_contract
from maestro.monitoring.alerts import drift_alerts
from maestro.monitoring.contract import REFSTATS_DIR_ENV
from maestro.operators.api.common import API_VERSION
from maestro.operators.api.driftcheck import DriftCheck, DriftCheckSpec
from maestro.operators.api.trainingrun import TrainingRun
from maestro.operators.core import objects
from maestro.operators.core.objects import env_value
from maestro.operators.core.settings import OperatorConfig
from maestro.serving import contract as serving_contract
from maestro.serving import predlog_layout

LABEL_DRIFTCHECK = "mlops.maestro.dev/driftcheck"
LABEL_TRIGGER = "mlops.maestro.dev/trigger"
ANNOTATION_JOB = "mlops.maestro.dev/drift-job"
# The check's full name on its Jobs (a label value holds at most 63 characters).
ANNOTATION_CHECK = "mlops.maestro.dev/driftcheck-name"
CONTAINER = "drift"
SEVERITY_LEVEL = {"Ok": 0, "Warning": 1, "Critical": 2}


@dataclass(frozen=True)
class Ids:
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class DriftSettings:
    """The operator settings that shape a DriftCheck's job (it runs like a trainer)."""

    tracking_uri: str = ""
    image: str = "ghcr.io/maestro-ml/maestro:0.1.0"
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    prediction_log_uri: str | None = None
    reports_uri: str | None = None
    object_store_secret: str | None = None
    prometheus_operator: bool = True
    runbook_base_url: str = ""

    @classmethod
    def from_config(cls, config: OperatorConfig) -> DriftSettings:
        return cls(
            tracking_uri=config.mlflow_tracking_uri or "",
            image=config.trainer_image,
            pod_labels=dict(config.trainer_pod_labels),
            prediction_log_uri=config.prediction_log_uri,
            reports_uri=config.drift_reports_uri,
            object_store_secret=config.object_store_secret,
            prometheus_operator=config.prometheus_operator,
            runbook_base_url=config.runbook_base_url,
        )


def labels(ids: Ids) -> dict[str, str]:
    return {
        LABEL_DRIFTCHECK: objects.label_value(ids.name),
        "app.kubernetes.io/managed-by": "maestro",
        "app.kubernetes.io/component": "driftcheck",
    }


def owner(ids: Ids) -> dict[str, Any]:
    return objects.owner_reference(DriftCheck.INFO.kind, ids.name, ids.uid)


def short_name(ids: Ids, limit: int = 40) -> str:
    """The check's name, or a prefix of it with a digest when longer than `limit`, so that
    two long names never share a derived name."""
    if len(ids.name) <= limit:
        return ids.name
    return f"{ids.name[: limit - 9].rstrip('-.')}-{objects.digest(ids.name)[:8]}"


def cron_job_name(ids: Ids) -> str:
    # The CronJob's Jobs get an 11-character suffix and must stay within 63.
    return f"{short_name(ids)}-drift"


def experiment(ids: Ids) -> str:
    return f"driftcheck/{ids.namespace}/{ids.name}"


def job_args(
    ids: Ids, spec: DriftCheckSpec, reference_uri: str, settings: DriftSettings
) -> list[str]:
    args = [
        "drift",
        "run",
        "--driftcheck",
        f"{ids.namespace}/{ids.name}",
        "--reference",
        reference_uri,
        "--stat-test",
        spec.stat_test.value,
        "--warning",
        f"{spec.thresholds.warning:g}",
        "--critical",
        f"{spec.thresholds.critical:g}",
        "--experiment",
        experiment(ids),
    ]
    if spec.current.uri:
        args += ["--current", spec.current.uri]
    else:
        root = predlog_layout.deployment_root(
            settings.prediction_log_uri or "", ids.namespace, spec.deployment
        )
        args += ["--predictions", root, "--window", spec.current.window or "24h"]
    if spec.columns:
        args += ["--columns", ",".join(spec.columns)]
    if settings.reports_uri:
        args += ["--reports", f"{settings.reports_uri.rstrip('/')}/{ids.namespace}/{ids.name}"]
    return args


def cron_job(
    ids: Ids, spec: DriftCheckSpec, reference_uri: str, settings: DriftSettings
) -> dict[str, Any]:
    pod_labels = {**labels(ids), **settings.pod_labels}
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.image,
        "command": ["maestro"],
        "args": job_args(ids, spec, reference_uri, settings),
        "env": [
            env_value(serving_contract.TRACKING_URI, settings.tracking_uri),
            {
                "name": serving_contract.POD_NAME,
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            },
            # The root filesystem is read-only; libraries that cache under ~ write to /tmp.
            env_value("HOME", "/tmp"),
            *(
                # Statistics of references with no folder of their own (sklearn://, runs:/)
                # are cached there, so each run does not compute them again.
                [env_value(REFSTATS_DIR_ENV, f"{settings.reports_uri.rstrip('/')}/refstats")]
                if settings.reports_uri
                else []
            ),
        ],
        **objects.env_from_secret(settings.object_store_secret),
        "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"memory": "2Gi"},
        },
        # The run's outcome (monitoring.contract.encode_message) is read from here.
        "terminationMessagePath": serving_contract.DEFAULT_TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": objects.restricted_container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    pod_spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": objects.restricted_pod_security_context(),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    job_spec = {
        "backoffLimit": 2,
        "activeDeadlineSeconds": 3600,
        # Bad input (exit 2) fails at once: another try reads the same data.
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": CONTAINER,
                        "operator": "In",
                        "values": [drift_contract.EXIT_BAD_INPUT],
                    },
                }
            ]
        },
        "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": objects.metadata(cron_job_name(ids), ids.namespace, labels(ids), owner(ids)),
        "spec": {
            "schedule": spec.schedule,
            "suspend": spec.suspend,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 300,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels(ids), "annotations": {ANNOTATION_CHECK: ids.name}},
                "spec": job_spec,
            },
        },
    }


def prometheus_rule(ids: Ids, spec: DriftCheckSpec, settings: DriftSettings) -> dict[str, Any]:
    """Warning and critical alerts on the drift share of this check's last run (the rules
    are maestro.monitoring.alerts')."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": objects.metadata(f"{ids.name}-drift", ids.namespace, labels(ids), owner(ids)),
        "spec": {
            "groups": [
                {
                    "name": f"maestro-drift-{ids.namespace}-{ids.name}",
                    "rules": drift_alerts(
                        ids.namespace,
                        ids.name,
                        spec.deployment,
                        warning=spec.thresholds.warning,
                        critical=spec.thresholds.critical,
                        runbooks=settings.runbook_base_url,
                    ),
                }
            ]
        },
    }


def retrain_name(ids: Ids, job: str) -> str:
    """One name per triggering run, so a repeated reconcile creates it once."""
    return f"{short_name(ids)}-retrain-{objects.digest(job)[:8]}"


def retrain_run(
    ids: Ids, template_spec: Mapping[str, Any], job: str, severity: str
) -> dict[str, Any]:
    """A TrainingRun with the template's spec, owned by and labelled for this check."""
    meta = objects.metadata(
        retrain_name(ids, job),
        ids.namespace,
        {**labels(ids), LABEL_TRIGGER: "drift"},
        {**owner(ids), "controller": False},
    )
    meta["annotations"] = {ANNOTATION_JOB: job, "mlops.maestro.dev/drift-severity": severity}
    return {
        "apiVersion": API_VERSION,
        "kind": TrainingRun.INFO.kind,
        "metadata": meta,
        "spec": dict(template_spec),
    }
