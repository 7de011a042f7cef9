"""`make demo`: the local platform with the operator running and the examples applied.
`python -m maestro.localplatform.demo up|down`."""

from __future__ import annotations

import argparse
import secrets
import sys
import time

from maestro.localplatform import cluster, mlflow_server, platform, prometheus
from maestro.localplatform.objectstore import LocalObjectStore
from maestro.localplatform.vault import LocalVault
from maestro.security.vault_client import read_kv, write_kv

DEMO_NAMESPACE = "maestro-demo"
# tools/services.sh creates it; the local overlay gives the operator the same database.
AUDIT_DATABASE = "postgresql://maestro:maestro@127.0.0.1:5432/governance"
# The Vault path and key manifests/examples/modeldeployment.yaml names in spec.secrets.
EXAMPLE_SECRET = ("secret/data/maestro/iris", "feature-store-token")


def up() -> None:
    cfg = cluster.ClusterConfig()
    started = time.monotonic()
    print("starting the local control plane ...", flush=True)
    cluster.up(cfg)
    print("starting MLflow on PostgreSQL ...", flush=True)
    ml = mlflow_server.MlflowConfig()
    mlflow_server.up(ml)
    print("starting Prometheus (scrapes the serving pods) ...", flush=True)
    prom = prometheus.PrometheusConfig()
    prometheus.up(prom)
    print("deploying the operator (manifests/overlays/local) ...", flush=True)
    platform.deploy_operator(cfg)
    cluster.kubectl(cfg, "create", "namespace", DEMO_NAMESPACE, check=False)
    # As in production: the API server refuses pods that break the restricted profile.
    cluster.kubectl(
        cfg,
        "label",
        "--overwrite",
        "namespace",
        DEMO_NAMESPACE,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    # The object store's endpoint and credentials (AWS_*) for the demo's workloads.
    LocalObjectStore(cfg).ensure_secret(DEMO_NAMESPACE)
    seeded = seed_example_secret(cfg)
    print(f"Vault: the example's secret {EXAMPLE_SECRET[0]} ({seeded})", flush=True)
    applied = platform.apply_examples(cfg, DEMO_NAMESPACE)
    print(f"applied {len(applied)} examples into namespace {DEMO_NAMESPACE}", flush=True)
    platform.wait_for_conditions(cfg, DEMO_NAMESPACE, timeout=30)
    print(f"\nready in {time.monotonic() - started:.0f}s\n")
    print(cluster.kubectl(cfg, "get", "tr,md,abt,dc", "-n", DEMO_NAMESPACE).stdout)
    print("The TrainingRun keeps training (an 8-trial Optuna search, about 30 s) and then")
    print("registers its best model as iris@candidate; follow it with `get tr -w`.")
    print("The ModelDeployment serves iris@champion, with the Vault secret above as")
    print("$FEATURE_STORE_TOKEN, and waits (ModelNotFound) until a version")
    print("holds that alias. Promote the candidate through the gates of")
    print("governance/policy.example.yaml (held-out accuracy, latency, signature), which records")
    print("the approval in the audit log and moves the alias; the rollout starts after it:")
    print(f"  {promote_command(cfg, ml.url)}\n")
    print("The ABTest iris-candidate waits while the candidate is the champion. Train a")
    print("second model (a logistic regression, registered as iris@candidate), then send")
    print("users to the deployment; the test splits them 80/20 and decides:")
    kubeconfig = cfg.kubeconfig.relative_to(cluster.REPO)
    print(
        f"  .maestro/bin/kubectl --kubeconfig {kubeconfig} apply -n {DEMO_NAMESPACE}"
        " -f manifests/examples/abtest-challenger/trainingrun.yaml"
    )
    print("  make demo-traffic\n")
    print(f"MLflow UI:  {ml.url}")
    print(f"Prometheus: {prom.url}")
    print(
        f"S3:         {LocalObjectStore(cfg).endpoint} (bucket maestro; keys in the Secret"
        f" maestro-objectstore of {DEMO_NAMESPACE})"
    )
    print(
        f"kubectl:    .maestro/bin/kubectl --kubeconfig {cfg.kubeconfig.relative_to(cluster.REPO)} "
        f"get tr,md,abt,dc -n {DEMO_NAMESPACE}"
    )
    print("stop with:  make down")


def seed_example_secret(cfg: cluster.ClusterConfig) -> str:
    """Write the secret the example ModelDeployment names (spec.secrets) into the platform's
    Vault, a random value, unless one is there: what its pods read once it is promoted."""
    client = LocalVault(cfg).root_client()
    path, key = EXAMPLE_SECRET
    try:
        if key in read_kv(client, path):
            return "kept"
    except LookupError:
        pass
    write_kv(client, path, {key: secrets.token_urlsafe(24)})
    return "written, a random value"


def promote_command(cfg: cluster.ClusterConfig, mlflow_url: str) -> str:
    """The shell command that promotes the demo's trained candidate to champion."""
    kubeconfig = cfg.kubeconfig.relative_to(cluster.REPO)
    version = (
        f"$(.maestro/bin/kubectl --kubeconfig {kubeconfig} get tr iris-train -n"
        f" {DEMO_NAMESPACE} -o jsonpath='{{.status.modelVersion}}')"
    )
    return (
        f"MLFLOW_TRACKING_URI={mlflow_url} MAESTRO_AUDIT_DATABASE_URL={AUDIT_DATABASE}"
        f" KUBECONFIG={kubeconfig} .venv/bin/maestro model promote iris --version"
        f' "{version}" --reason "first champion" --policy governance/policy.example.yaml'
    )


def down(cfg: cluster.ClusterConfig | None = None) -> None:
    """Remove the operator, stop Prometheus, MLflow and the cluster, then kill whatever
    process carrying the platform's mark is left (procs.MARKER: pod processes whose
    runner died, programs that ignore SIGTERM, their children). ClusterError if one
    survives SIGKILL."""
    cfg = cfg or cluster.ClusterConfig()
    if cluster.is_up(cfg):
        platform.remove_operator(cfg)
    prometheus.down(prometheus.PrometheusConfig(root=cfg.root))
    mlflow_server.down(mlflow_server.MlflowConfig(root=cfg.root))
    cluster.down(cfg)
    left = cfg.processes().sweep()
    if left:
        raise cluster.ClusterError(
            "processes of the platform that would not die:\n" + "\n".join(map(str, left))
        )
    print("local platform stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maestro.localplatform.demo", description=__doc__
    )
    parser.add_argument("command", choices=("up", "down"))
    args = parser.parse_args(argv)
    try:
        up() if args.command == "up" else down()
    except (cluster.ClusterError, mlflow_server.MlflowError, prometheus.PrometheusError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
