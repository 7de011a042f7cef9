"""The pod runner's calls to the API server: listing and watching its pods, the finalizer
it holds on them, their status and final delete, the Secrets and ConfigMaps their env
reads, and a bound ServiceAccount token for each."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from maestro.localplatform.clusterconfig import POD_RUNNER_LABEL
from maestro.localplatform.pods.env import EnvSources, SourceRef, decode_secret_data

LABEL = POD_RUNNER_LABEL
# Held on every pod this runner admits and dropped only once its processes are dead, so
# a pod object never disappears (kwok deletes finalizer-free pods a second after their
# deletionTimestamp) while its process still runs and holds its address.
FINALIZER = "maestro.dev/pod-runner"

Body = dict[str, Any]


class PodApi:
    """The runner's API client, authenticated by the admin kubeconfig."""

    def __init__(self, kubeconfig: Path) -> None:
        self.api_client: Any = config.new_client_from_config(str(kubeconfig))
        self.core: Any = client.CoreV1Api(self.api_client)
        self.discovery: Any = client.DiscoveryV1Api(self.api_client)
        self.server = str(self.api_client.configuration.host)
        self.ca = self.api_client.configuration.ssl_ca_cert

    def _body(self, obj: Any) -> Body:
        body: Body = self.api_client.sanitize_for_serialization(obj)
        return body

    # ---- pods

    def list_pods(self) -> tuple[list[Body], str]:
        """The runner's pods and the resourceVersion to watch from."""
        listed = self.core.list_pod_for_all_namespaces(
            label_selector=f"{LABEL}=true", _request_timeout=90
        )
        return [self._body(p) for p in listed.items], str(listed.metadata.resource_version)

    def watch_pods(self, version: str) -> Iterator[tuple[str, Body]]:
        """(event type, pod) from `version` on, bookmarks included, until the server ends
        the watch; an expired version raises ApiException 410."""
        w = watch.Watch()
        for event in w.stream(
            self.core.list_pod_for_all_namespaces,
            label_selector=f"{LABEL}=true",
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=60,
            _request_timeout=90,
        ):
            yield str(event["type"]), self._body(event["object"])

    def claim(self, body: Mapping[str, Any]) -> bool:
        """Put FINALIZER on a pod about to be run; False when the pod is already gone."""
        meta = body["metadata"]
        if FINALIZER in (meta.get("finalizers") or []):
            return True
        try:
            # Strategic merge: finalizers merge as a set, so the job controller's stay.
            self.core.patch_namespaced_pod(
                meta["name"], meta["namespace"], {"metadata": {"finalizers": [FINALIZER]}}
            )
            return True
        except ApiException as err:
            if err.status == 404:
                return False
            raise

    def release(self, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        with contextlib.suppress(ApiException):
            self.core.patch_namespaced_pod(
                meta["name"],
                meta["namespace"],
                {"metadata": {"$deleteFromPrimitiveList/finalizers": [FINALIZER]}},
            )

    def delete_now(self, body: Mapping[str, Any]) -> None:
        """The kubelet's final delete (grace 0) of this very pod, not of a namesake."""
        meta = body["metadata"]
        self.core.delete_namespaced_pod(
            meta["name"],
            meta["namespace"],
            body=client.V1DeleteOptions(
                grace_period_seconds=0,
                preconditions=client.V1Preconditions(uid=meta["uid"]),
            ),
        )

    def annotate(self, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        self.core.patch_namespaced_pod(name, namespace, {"metadata": {"annotations": annotations}})

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.core.patch_namespaced_pod_status(name, namespace, {"status": status})

    # ---- Services (the kube-proxy stand-in)

    def services_and_slices(self) -> tuple[list[Body], list[Body]]:
        services = self.core.list_service_for_all_namespaces(_request_timeout=30)
        slices = self.discovery.list_endpoint_slice_for_all_namespaces(_request_timeout=30)
        return [self._body(s) for s in services.items], [self._body(e) for e in slices.items]

    # ---- what containers get

    def read_sources(self, namespace: str, refs: Iterable[SourceRef]) -> EnvSources:
        """Each Secret and ConfigMap of `refs`; one the server refuses is recorded with
        the server's answer, any other error raises."""
        data: dict[SourceRef, Mapping[str, str]] = {}
        unavailable: dict[SourceRef, str] = {}
        for ref in refs:
            try:
                if ref.kind == "secret":
                    secret = self.core.read_namespaced_secret(ref.name, namespace)
                    data[ref] = decode_secret_data(secret.data)
                else:
                    cm = self.core.read_namespaced_config_map(ref.name, namespace)
                    data[ref] = dict(cm.data or {})
            except ApiException as err:
                unavailable[ref] = str(err)
        return EnvSources(data, unavailable)

    def config_map(self, namespace: str, name: str) -> dict[str, str]:
        return dict(self.core.read_namespaced_config_map(name, namespace).data or {})

    def service_account_token(
        self,
        spec: Mapping[str, Any],
        namespace: str,
        name: str,
        uid: str,
        audiences: list[str],
        seconds: int,
    ) -> str:
        """A token of the pod's ServiceAccount bound to the pod, as the kubelet asks for
        one (TokenRequest): no longer valid once the pod is gone."""
        sa = spec.get("serviceAccountName") or "default"
        req = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=audiences,
                expiration_seconds=seconds,
                bound_object_ref=client.V1BoundObjectReference(
                    kind="Pod", api_version="v1", name=name, uid=uid
                ),
            )
        )
        token: str = self.core.create_namespaced_service_account_token(
            sa, namespace, req
        ).status.token
        return token

    def service_account_kubeconfig(
        self, spec: Mapping[str, Any], namespace: str, name: str, uid: str, workdir: Path
    ) -> Path | None:
        """A kubeconfig in `workdir` with a token bound to the pod, for its ServiceAccount;
        None when the pod opts out of a token."""
        if spec.get("automountServiceAccountToken") is False:
            return None
        sa = spec.get("serviceAccountName") or "default"
        token = self.service_account_token(spec, namespace, name, uid, [], 86400)
        path = workdir / "serviceaccount.kubeconfig"
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: local\n  cluster:\n    server: {self.server}\n"
            f"    certificate-authority: {self.ca}\n"
            f"users:\n- name: {sa}\n  user:\n    token: {token}\n"
            f"contexts:\n- name: local\n  context:\n    cluster: local\n    user: {sa}\n"
            f"    namespace: {namespace}\ncurrent-context: local\n"
        )
        path.chmod(0o600)
        return path
