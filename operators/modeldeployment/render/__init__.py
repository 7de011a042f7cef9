"""ModelDeployment -> the Kubernetes objects that serve it. Pure: no kopf, no kubernetes, no I/O.

This package: `names` (labels, selectors, settings), `workload` (the Deployment),
`traffic` (Services, HPA, PDB, NetworkPolicy, Istio), `monitoring` (ServiceMonitor, alert
rules); `render` and `stale` here put them together.

`render(ids, spec, plan, settings)` is a function of the typed spec, the revision plan that
maestro.operators.modeldeployment.decide chose and explicit serving settings, so the
same inputs always give the same manifests; tests/golden/modeldeployment/ holds one file per
shape. Every object carries the ModelDeployment's labels and its controller ownerReference
(the owner is an argument, as for TrainingRuns), so deleting the ModelDeployment deletes
them all; objects of revisions the plan no longer names are for the handler to delete
(`stale`), found through `selector`.

Per revision (`<md>-<revision>`): a Deployment running `maestro serve`, a Service for direct
addressing and Istio subsets, an HPA (autoscaling/v2) unless autoscaling is off, and a
PodDisruptionBudget. Per ModelDeployment (`<md>`): the Service clients use, a NetworkPolicy
and, when enabled, a ServiceMonitor and PrometheusRule (Prometheus Operator) and a
DestinationRule and VirtualService (Istio).

Traffic: with Istio the `<md>` Service selects every revision and the VirtualService splits
and mirrors by subset. Without Istio it selects the one revision with traffic, or every
revision while a canary runs, whose traffic then follows the replica counts (the canary's
replicas follow its weight); shadow mirroring needs Istio.

Secrets: a deployment with spec.secrets gets a ServiceAccount of its own (`<md>-serving`),
which its Vault role (security.vault_access, written by the handler) binds; the Vault Agent
injector's init container renders each entry to /vault/secrets/<env> (the bare value)
before the server starts and its sidecar renders it again at an interval; the server reads
the files into its environment (`--secret-file`) and follows their changes. Values never
reach the pod spec.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from maestro.operators.api.modeldeployment import ModelDeploymentSpec
from maestro.operators.core.abtests import SplitPlan
from maestro.operators.core.objects import label_value
from maestro.operators.modeldeployment.decide import RevisionPlan, Role
from maestro.operators.modeldeployment.render.abtest import (
    challenger_revision,
    challenger_service_name,
    peer_url,
    split_env,
    with_env,
)
from maestro.operators.modeldeployment.render.monitoring import (
    alert_rules,
    render_prometheus_rule,
    render_service_monitor,
)
from maestro.operators.modeldeployment.render.names import (
    APP_NAME,
    CONTAINER,
    GRPC_PORT_NAME,
    GRPC_SERVICE_PORT,
    LABEL_DEPLOYMENT,
    LABEL_INSTANCE,
    LABEL_NAME,
    LABEL_REVISION,
    LABEL_ROLE,
    LIVE_PATH,
    METRICS_PATH,
    OWNED_KINDS,
    PORT_NAME,
    READY_PATH,
    REQUESTS_PER_SECOND_METRIC,
    SERVER_UID,
    SERVICE_PORT,
    VAULT,
    VAULT_SECRETS_DIR,
    DeploymentIds,
    Manifest,
    OwnedKind,
    ServingSettings,
    base_name,
    labels,
    object_name,
    owned_kinds,
    owner_label,
    owner_reference,
    pods_selector,
    prediction_log_path,
    revision_selector,
    selector,
    served_name,
    service_host,
    service_url,
)
from maestro.operators.modeldeployment.render.traffic import (
    render_authorization_policy,
    render_destination_rule,
    render_hpa,
    render_network_policy,
    render_pdb,
    render_peer_authentication,
    render_revision_service,
    render_service,
    render_virtual_service,
    tracking_port,
)
from maestro.operators.modeldeployment.render.workload import (
    TraceContexts,
    render_deployment,
    render_service_account,
    server_args,
    server_env,
    vault_annotations,
)


def render(
    ids: DeploymentIds,
    spec: ModelDeploymentSpec,
    plan: RevisionPlan,
    settings: ServingSettings,
    split: SplitPlan | None = None,
    challenger_ip: str | None = None,
    traces: TraceContexts | None = None,
) -> list[Manifest]:
    """Every object the plan needs, in OWNED_KINDS order; none when it names no revision.
    `split`: a running ABTest's (render.abtest); `challenger_ip`: its challenger Service's
    ClusterIP once the challenger is ready, the champion's pods then send it its share;
    `traces`: the trace context each revision's pods carry (none without)."""
    if not plan.revisions:
        return []
    objects = [render_service_account(ids)] if spec.secrets else []
    objects.append(render_service(ids, plan, settings))
    objects += [render_revision_service(ids, r) for r in plan.revisions]
    traces = traces or TraceContexts()
    deployments = [
        render_deployment(ids, spec, r, settings, traces.of(r.name)) for r in plan.revisions
    ]
    if split is not None:
        challenger = challenger_revision(spec, split)
        objects.append(render_revision_service(ids, challenger))
        champion = split_env(split, "champion", peer_url(challenger_ip))
        deployments = [
            with_env(d, champion) if r.role is Role.STABLE else d
            for r, d in zip(plan.revisions, deployments, strict=True)
        ]
        deployments.append(
            with_env(
                render_deployment(ids, spec, challenger, settings, traces.of(challenger.name)),
                split_env(split, "challenger"),
            )
        )
    objects += deployments
    if spec.autoscaling.enabled:
        objects += [render_hpa(ids, spec, r) for r in plan.revisions]
    objects += [render_pdb(ids, r) for r in plan.revisions]
    objects.append(render_network_policy(ids, spec, settings))
    if settings.istio:
        objects.append(render_destination_rule(ids, plan, settings))
        objects.append(render_virtual_service(ids, plan, settings))
        objects.append(render_peer_authentication(ids))
        objects.append(render_authorization_policy(ids, spec, settings))
    if settings.prometheus_operator:
        objects.append(render_service_monitor(ids))
        objects.append(render_prometheus_rule(ids, spec, settings))
    return objects


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    group = str(obj["apiVersion"]).rpartition("/")[0]
    return (group, str(obj["kind"]), str(obj["metadata"]["name"]))


def stale(
    desired: Iterable[Mapping[str, Any]], live: Iterable[Mapping[str, Any]]
) -> list[Manifest]:
    """The live objects (listed by `selector` for each OWNED_KINDS) that `desired` no longer
    has: a removed revision's objects, the HPAs once autoscaling is off, and so on."""
    wanted = {_key(obj) for obj in desired}
    return [dict(obj) for obj in live if _key(obj) not in wanted]


__all__ = [
    "APP_NAME",
    "CONTAINER",
    "GRPC_PORT_NAME",
    "GRPC_SERVICE_PORT",
    "LABEL_DEPLOYMENT",
    "LABEL_INSTANCE",
    "LABEL_NAME",
    "LABEL_REVISION",
    "LABEL_ROLE",
    "LIVE_PATH",
    "METRICS_PATH",
    "OWNED_KINDS",
    "PORT_NAME",
    "READY_PATH",
    "REQUESTS_PER_SECOND_METRIC",
    "SERVER_UID",
    "SERVICE_PORT",
    "VAULT",
    "VAULT_SECRETS_DIR",
    "DeploymentIds",
    "Manifest",
    "OwnedKind",
    "ServingSettings",
    "TraceContexts",
    "alert_rules",
    "base_name",
    "challenger_service_name",
    "label_value",
    "labels",
    "object_name",
    "owned_kinds",
    "owner_label",
    "owner_reference",
    "pods_selector",
    "prediction_log_path",
    "render",
    "render_authorization_policy",
    "render_deployment",
    "render_destination_rule",
    "render_hpa",
    "render_network_policy",
    "render_pdb",
    "render_peer_authentication",
    "render_prometheus_rule",
    "render_revision_service",
    "render_service",
    "render_service_account",
    "render_service_monitor",
    "render_virtual_service",
    "revision_selector",
    "selector",
    "served_name",
    "server_args",
    "server_env",
    "service_host",
    "service_url",
    "stale",
    "tracking_port",
    "vault_annotations",
]
