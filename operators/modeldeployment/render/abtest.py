"""A running ABTest's part of the ModelDeployment's objects (pure): the challenger's revision
(Deployment and Service, beside the champion's), and the split's environment in the serving
pods of both (serving.abtest_router). The champion's pods assign requests and send the
challenger's share to the challenger Service's ClusterIP (stable for the Service's life, and
reached through kube-proxy or the mesh without cluster DNS)."""

from __future__ import annotations

from typing import Any

from maestro.operators.api.modeldeployment import ModelDeploymentSpec
from maestro.operators.core.abtests import SplitPlan
from maestro.operators.core.objects import env_value
from maestro.operators.modeldeployment.decide import Revision, Role
from maestro.operators.modeldeployment.render.names import (
    CONTAINER,
    SERVICE_PORT,
    DeploymentIds,
    Manifest,
    object_name,
)
from maestro.serving import contract


def challenger_revision(spec: ModelDeploymentSpec, split: SplitPlan) -> Revision:
    floor = spec.replicas.min
    return Revision(
        name=split.revision,
        model_uri=split.challenger_uri,
        role=Role.CHALLENGER,
        replicas=floor,
        max_replicas=floor,
    )


def challenger_service_name(ids: DeploymentIds, split: SplitPlan) -> str:
    return object_name(ids.name, split.revision)


def split_env(split: SplitPlan, variant: str, peer_url: str | None = None) -> list[dict[str, Any]]:
    env = [
        env_value(contract.ABTEST, split.name),
        env_value(contract.ABTEST_KEY, split.key),
        env_value(contract.ABTEST_VARIANT, variant),
        env_value(contract.ABTEST_CHALLENGER_PERCENT, f"{split.challenger_percent:g}"),
    ]
    if split.split_header:
        env.append(env_value(contract.ABTEST_SPLIT_HEADER, split.split_header))
    if peer_url:
        env.append(env_value(contract.ABTEST_PEER_URL, peer_url))
    return env


def peer_url(cluster_ip: str | None) -> str | None:
    return f"http://{cluster_ip}:{SERVICE_PORT}" if cluster_ip and cluster_ip != "None" else None


def with_env(deployment: Manifest, env: list[dict[str, Any]]) -> Manifest:
    """A copy of a serving Deployment whose server container also gets `env`."""
    template = deployment["spec"]["template"]
    containers = [
        {**c, "env": [*c.get("env", []), *env]} if c["name"] == CONTAINER else c
        for c in template["spec"]["containers"]
    ]
    spec = {**template["spec"], "containers": containers}
    return {
        **deployment,
        "spec": {**deployment["spec"], "template": {**template, "spec": spec}},
    }
