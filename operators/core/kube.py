"""The API client every controller uses: plain JSON over the kubernetes client, server-side
apply under the operator's one field manager, and the applied-hash annotation that lets a
reconcile that finds everything as it should be write nothing (not even a no-op apply)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, cast

FIELD_MANAGER = "maestro-operator"
# The hash of the manifest last applied: an object that carries the hash of what the
# operator would apply now is left alone, so a reconcile that finds everything as it
# should be writes nothing (not even a no-op apply).
APPLIED_HASH_ANNOTATION = "mlops.maestro.dev/applied-hash"

Obj = dict[str, Any]


def plural_of(kind: str) -> str:
    """Kubernetes' own rule for the resource name of a kind (all the kinds we touch)."""
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    if lower.endswith("s"):
        return lower + "es"
    return lower + "s"


def manifest_hash(obj: Mapping[str, Any]) -> str:
    """A stable digest of a rendered manifest (its annotation excluded)."""
    meta = dict(obj.get("metadata") or {})
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k != APPLIED_HASH_ANNOTATION
    }
    meta["annotations"] = annotations
    canonical = json.dumps({**obj, "metadata": meta}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def with_hash(obj: Mapping[str, Any]) -> Obj:
    """The manifest with its hash annotation set."""
    meta = dict(obj["metadata"])
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        APPLIED_HASH_ANNOTATION: manifest_hash(obj),
    }
    return {**obj, "metadata": meta}


class Kube:
    """The API calls the controllers make, as plain JSON over the kubernetes client."""

    def __init__(
        self,
        api_client: Any,
        timeout: float,
        on_write: Callable[[str, str], None] | None = None,
    ) -> None:
        """`on_write(kind, verb)`: told of every write (the operator's metrics)."""
        self.api = api_client
        self.timeout = timeout
        self.on_write = on_write

    def _wrote(self, kind: str, verb: str) -> None:
        if self.on_write is not None:
            self.on_write(kind, verb)

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        return self.api.call_api(
            path,
            method,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _request_timeout=self.timeout,
        )

    def _get(self, path: str, query: list[tuple[str, str]] | None = None) -> Obj | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return cast(Obj, self._call("GET", path, query=query))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    @staticmethod
    def path(
        api_version: str, plural: str, namespace: str | None = None, name: str | None = None
    ) -> str:
        """The REST path of a kind (cluster-wide without `namespace`), or of one object."""
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
        return f"{path}/{name}" if name else path

    def get_path(self, path: str, query: list[tuple[str, str]] | None = None) -> Obj | None:
        """GET of any path (None: 404), e.g. a cluster-wide list."""
        return self._get(path, query)

    def stream(self, path: str, query: list[tuple[str, str]], timeout: float) -> Any:
        """A GET whose body is read as it comes (a watch): urllib3's response, to be
        released by the caller."""
        return self.api.call_api(
            path,
            "GET",
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=False,
            _request_timeout=timeout,
        )

    def get(self, api_version: str, plural: str, namespace: str, name: str) -> Obj | None:
        return self._get(self.path(api_version, plural, namespace, name))

    def list(
        self, api_version: str, plural: str, namespace: str, selector: str | None = None
    ) -> list[Obj]:
        query = [("labelSelector", selector)] if selector else None
        found = self._get(self.path(api_version, plural, namespace), query) or {}
        return list(found.get("items") or [])

    def patch_status(
        self, api_version: str, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        self._wrote(plural, "patch-status")
        self._call(
            "PATCH",
            self.path(api_version, plural, namespace, name) + "/status",
            body={"status": dict(status)},
            content_type="application/merge-patch+json",
        )

    def apply(self, obj: Mapping[str, Any]) -> Obj:
        """Server-side apply under the operator's one field manager; the object as the API
        server answered it."""
        meta = obj["metadata"]
        self._wrote(plural_of(obj["kind"]), "apply")
        answer = self._call(
            "PATCH",
            self.path(obj["apiVersion"], plural_of(obj["kind"]), meta["namespace"], meta["name"]),
            body=dict(obj),
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        return {**cast(Obj, answer or {}), "apiVersion": obj["apiVersion"], "kind": obj["kind"]}

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        self._wrote(plural_of(kind), "delete")
        try:
            self._call(
                "DELETE",
                self.path(api_version, plural_of(kind), namespace, name),
                body={"propagationPolicy": "Background"},
            )
        except ApiException as err:
            if err.status != 404:
                raise
