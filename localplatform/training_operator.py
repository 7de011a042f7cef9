"""Kubeflow's training operator as a process of the platform: its command line and
environment, the objects it needs besides its CRDs, the Workers' init container template,
and what a kubelet would do for its Secret volume."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from maestro.localplatform.clusterconfig import ClusterConfig
from maestro.localplatform.kubectl import apply_manifests, kubectl
from maestro.localplatform.pods.volumes import Mount, in_mount_namespace

TRAINING_OPERATOR_NAMESPACE = "kubeflow"
TRAINING_OPERATOR_SERVICE = "training-operator"
# Upstream's names (pkg/cert/cert.go, manifests/base/webhook): the Secret its certificate
# rotator keeps the webhook's CA and serving certificate in, the webhook configuration it
# injects the CA into, and the folder its webhook server reads the certificate from (in a
# pod, the Secret mounted there).
TRAINING_OPERATOR_CERTS = "training-operator-webhook-cert"
TRAINING_OPERATOR_WEBHOOK_CONFIGURATION = "validator.training-operator.kubeflow.org"
TRAINING_OPERATOR_CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"
# The kinds the platform installs CRDs for (tools/fetch-upstream-crds.sh); a scheme without
# its CRD would stop the operator.
TRAINING_OPERATOR_SCHEMES = ("pytorchjob", "tfjob", "xgboostjob")
# The image named in the Workers' init container; the pod runner runs its command as it runs
# every local pod's.
TRAINING_OPERATOR_INIT_IMAGE = "ghcr.io/maestro-ml/maestro:0.1.0"


# Upstream's loop, with getent for nslookup; {{...}} are the operator's template fields.
WAIT_FOR_MASTER = (
    "err=1;for i in $(seq {{.MaxTries}}); do if getent hosts {{.MasterAddr}};"
    " then err=0 && break; fi;echo waiting for master; sleep 2; done; exit $err"
)


def pytorch_init_container_template() -> str:
    """The Workers' init container that waits until the Master's name resolves: upstream's
    template (pkg/controller.v1/pytorch/initcontainer.go) with `getent hosts` for alpine's
    `nslookup` (both ask the pod's resolver; getent is in every glibc image, this host
    included) and the container securityContext the restricted Pod Security profile of
    Maestro's namespaces requires (upstream's has none, so its Workers would be refused)."""
    return (
        """- name: init-pytorch
  image: {{.InitContainerImage}}
  imagePullPolicy: IfNotPresent
  resources:
    limits:
      cpu: 100m
      memory: 20Mi
    requests:
      cpu: 50m
      memory: 10Mi
  securityContext:
    allowPrivilegeEscalation: false
    capabilities:
      drop: [ALL]
    runAsNonRoot: true
    seccompProfile:
      type: RuntimeDefault
  command: ['sh', '-c', '"""
        + WAIT_FOR_MASTER
        + """']
"""
    )


def training_operator_dir(cfg: ClusterConfig) -> Path:
    return cfg.state / "training-operator"


def training_operator_cert_dir(cfg: ClusterConfig) -> Path:
    """What the platform mounts at TRAINING_OPERATOR_CERT_DIR for the operator process,
    filled from the rotator's Secret (cluster.sync_training_operator_certs)."""
    return training_operator_dir(cfg) / "serving-certs"


def training_operator_argv(cfg: ClusterConfig) -> list[str]:
    """The operator as its Deployment runs it, less leader election, with its metrics and
    health endpoints on loopback (upstream binds them on every address, where a serving
    pod's 8080 would collide) and only the schemes whose CRDs are installed. It runs in a
    mount namespace of its own with the platform's copy of its Secret at its cert dir."""
    argv = [
        str(cfg.bin / "training-operator"),
        f"--metrics-bind-address=127.0.0.1:{cfg.training_operator_metrics_port}",
        f"--health-probe-bind-address=127.0.0.1:{cfg.training_operator_health_port}",
        f"--webhook-server-port={cfg.training_operator_webhook_port}",
        f"--webhook-service-name={TRAINING_OPERATOR_SERVICE}",
        f"--webhook-secret-name={TRAINING_OPERATOR_CERTS}",
        *(f"--enable-scheme={s}" for s in TRAINING_OPERATOR_SCHEMES),
        f"--pytorch-init-container-image={TRAINING_OPERATOR_INIT_IMAGE}",
        f"--pytorch-init-container-template-file={training_operator_dir(cfg) / 'init.yaml'}",
        # 100 tries 2 s apart, as upstream's default.
        "--pytorch-init-container-max-tries=100",
        "--zap-log-level=info",
    ]
    return in_mount_namespace(
        argv, [Mount(training_operator_cert_dir(cfg), TRAINING_OPERATOR_CERT_DIR)]
    )


def training_operator_env(cfg: ClusterConfig) -> dict[str, str]:
    """Where it finds the API (the platform's admin, as metrics-server) and its namespace."""
    return {"KUBECONFIG": str(cfg.kubeconfig), "MY_POD_NAMESPACE": TRAINING_OPERATOR_NAMESPACE}


def _training_operator_webhook(cfg: ClusterConfig, plural: str, kind: str) -> dict[str, Any]:
    """One webhook of upstream's manifests/base/webhook (with its patch.yaml applied)."""
    return {
        "name": f"validator.{kind}.training-operator.kubeflow.org",
        "admissionReviewVersions": ["v1"],
        "clientConfig": {
            "service": {
                "name": TRAINING_OPERATOR_SERVICE,
                "namespace": TRAINING_OPERATOR_NAMESPACE,
                "path": f"/validate-kubeflow-org-v1-{kind}",
                "port": cfg.training_operator_webhook_port,
            }
        },
        "failurePolicy": "Fail",
        "rules": [
            {
                "apiGroups": ["kubeflow.org"],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": [plural],
            }
        ],
        "sideEffects": "None",
    }


def training_operator_manifests(cfg: ClusterConfig) -> str:
    """What the operator needs besides its CRDs, and no more: its namespace, the Secret its
    certificate rotator fills, the webhook Service and the ValidatingWebhookConfiguration
    whose caBundle the rotator injects (it reports ready only then). The Service is an
    ExternalName for localhost, as metrics-server's (a host process has no pod IP); the API
    server still checks the certificate against training-operator.kubeflow.svc."""
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": TRAINING_OPERATOR_NAMESPACE},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": TRAINING_OPERATOR_CERTS,
                "namespace": TRAINING_OPERATOR_NAMESPACE,
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": TRAINING_OPERATOR_SERVICE,
                "namespace": TRAINING_OPERATOR_NAMESPACE,
            },
            "spec": {"type": "ExternalName", "externalName": "localhost"},
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": TRAINING_OPERATOR_WEBHOOK_CONFIGURATION},
            "webhooks": [
                _training_operator_webhook(cfg, "pytorchjobs", "pytorchjob"),
                _training_operator_webhook(cfg, "tfjobs", "tfjob"),
                _training_operator_webhook(cfg, "xgboostjobs", "xgboostjob"),
            ],
        },
    ]
    return "".join(f"---\n{json.dumps(d)}\n" for d in docs)


def start_training_operator(cfg: ClusterConfig) -> None:
    """Kubeflow's training operator (after the CRDs of its kinds), with the objects it needs:
    see training_operator_manifests."""
    where = training_operator_dir(cfg)
    training_operator_cert_dir(cfg).mkdir(parents=True, exist_ok=True)
    (where / "init.yaml").write_text(pytorch_init_container_template())
    apply_manifests(cfg, training_operator_manifests(cfg), force=False)
    cfg.processes().start(
        "training-operator",
        training_operator_argv(cfg),
        env={**os.environ, **training_operator_env(cfg)},
    )


def sync_training_operator_certs(cfg: ClusterConfig) -> bool:
    """What a kubelet does for the operator's Secret volume: its certificate rotator writes
    the webhook's serving certificate into the Secret, and its webhook server reads it from
    files. True once they are written."""
    proc = kubectl(
        cfg,
        "get",
        "secret",
        TRAINING_OPERATOR_CERTS,
        "-n",
        TRAINING_OPERATOR_NAMESPACE,
        "-o",
        "json",
        check=False,
    )
    if proc.returncode != 0:
        return False
    data = json.loads(proc.stdout).get("data") or {}
    if not all(data.get(k) for k in ("tls.crt", "tls.key", "ca.crt")):
        return False
    where = training_operator_cert_dir(cfg)
    for key in ("tls.crt", "tls.key", "ca.crt"):
        path = where / key
        content = base64.b64decode(data[key])
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)
            path.chmod(0o600)
    return True
