"""The ModelDeployments running a model version now, for `maestro lineage`.

`serving_revisions` is pure: it reads the URIs the operator resolved into each status.
`list_modeldeployments` is the only I/O: it lists them with the caller's kubeconfig and
turns every way that can fail into DeploymentsUnavailable, whose message says why.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from maestro.governance.lineage_model import Role, Serving
from maestro.operators.api import GROUP, VERSION
from maestro.operators.api.modeldeployment import ModelDeployment, ModelDeploymentStatus


class DeploymentsUnavailable(RuntimeError):
    """The cluster could not be asked; the message says why."""


# Lists ModelDeployment objects (as the API returns them) or raises DeploymentsUnavailable.
DeploymentsSource = Callable[[], Sequence[Mapping[str, Any]]]


# Wire names of the status fields read, from the operator's model: a rename fails here.
WIRE = {name: field.alias or name for name, field in ModelDeploymentStatus.model_fields.items()}
ROLES = (
    (Role.STABLE, WIRE["stable_revision"], WIRE["stable_model_uri"]),
    (Role.CANARY, WIRE["canary_revision"], WIRE["canary_model_uri"]),
    (Role.PREVIOUS, WIRE["previous_revision"], WIRE["previous_model_uri"]),
)


def serving_revisions(
    objects: Iterable[Mapping[str, Any]], targets: set[str]
) -> tuple[Serving, ...]:
    """The revisions whose resolved model URI is one of `targets`. The operator writes
    registry URIs as models:/<name>/<version>; a version's source (its logged model's or
    run's URI) matches deployments of that URI.

    Only these few fields are read, not the whole status model: a status written by an
    operator of another release (a new phase, say) must not hide the others."""
    found = []
    for obj in objects:
        meta, status = obj.get("metadata") or {}, obj.get("status") or {}
        weight = status.get(WIRE["canary_weight"])
        for role, revision, uri in ROLES:
            if status.get(uri) in targets:
                found.append(
                    Serving(
                        namespace=str(meta.get("namespace", "")),
                        deployment=str(meta.get("name", "")),
                        role=role,
                        revision=_text(status.get(revision)),
                        model_uri=str(status[uri]),
                        phase=_text(status.get(WIRE["phase"])),
                        canary_weight=weight
                        if role is Role.CANARY and isinstance(weight, int)
                        else None,
                    )
                )
    return tuple(sorted(found, key=lambda s: (s.namespace, s.deployment, list(Role).index(s.role))))


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def list_modeldeployments(kubeconfig: str | None = None) -> list[dict[str, Any]]:
    return list_objects(ModelDeployment.INFO.plural, kubeconfig)


def list_objects(plural: str, kubeconfig: str | None = None) -> list[dict[str, Any]]:
    """Every object of one Maestro kind (plural) in the cluster the caller's kubeconfig
    names (`kubeconfig`, else KUBECONFIG, else ~/.kube/config); raises
    DeploymentsUnavailable saying why not."""
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    # Read here, not by the kubernetes package: it reads KUBECONFIG once, when imported.
    path = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    files = [os.path.expanduser(p) for p in path.split(os.pathsep) if p]
    if not any(os.path.isfile(f) for f in files):
        raise DeploymentsUnavailable(f"no kubeconfig found (looked for {path})")
    configuration = client.Configuration()
    try:
        config.load_kube_config(
            config_file=path, client_configuration=configuration, persist_config=False
        )
    except Exception as err:
        # A file the user wrote, parsed by a library that documents no set of errors
        # (ConfigException, YAML errors, KeyError or TypeError on a wrong shape...).
        text = " ".join(str(err).split())[:300]
        raise DeploymentsUnavailable(f"kubeconfig {path} is not usable: {text}") from err
    # urllib3 retries three times by default; one retry reports a down API server sooner.
    configuration.retries = 1
    items: list[dict[str, Any]] = []
    token = None
    try:
        with client.ApiClient(configuration) as api:
            custom = client.CustomObjectsApi(api)
            while True:  # in pages, so a large cluster is not one huge response
                page = custom.list_cluster_custom_object(
                    GROUP, VERSION, plural, limit=500, _continue=token, _request_timeout=(5, 30)
                )
                items += page.get("items", [])
                token = page.get("metadata", {}).get("continue")
                if not token:
                    return items
    except ApiException as err:
        raise DeploymentsUnavailable(_api_problem(plural, err.status, err.reason)) from err
    except (HTTPError, OSError) as err:
        text = " ".join(str(err).split())[:300]
        raise DeploymentsUnavailable(
            f"the Kubernetes API server at {configuration.host} is unreachable: {text}"
        ) from err


def _api_problem(plural: str, status: int | None, reason: str | None) -> str:
    said = f"{status} {reason or ''}".strip()
    if status == 401:
        return f"the Kubernetes API server refused the kubeconfig's credentials ({said})"
    if status == 403:
        return f"not allowed to list {plural} in all namespaces ({said})"
    if status == 404:
        return f"the cluster has no {plural} resource; are Maestro's CRDs installed? ({said})"
    return f"listing {plural} failed ({said})"
