"""What the ModelDeployment cluster tests share besides the `registered` model fixture
(tests/cluster/conftest.py): its alias, waiting on a ModelDeployment's status, and the
traffic a mesh would send to its revisions."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx

from maestro.localplatform.wait import eventually
from tests.cluster.objects import get, items
from tests.conftest import Cluster

REPO = Path(__file__).resolve().parents[2]
API_VERSION = "mlops.maestro.dev/v1alpha1"
ALIAS = "production"


class Summarised(Protocol):
    def summary(self) -> str: ...


def wait_status(
    cluster: Cluster,
    namespace: str,
    name: str,
    what: str,
    check: Callable[[dict[str, Any]], Any],
    timeout: float = 90,
    mesh: Summarised | None = None,
) -> dict[str, Any]:
    """The ModelDeployment once `check(status)` holds; fails with the last status seen."""
    seen: list[Any] = [None]

    def probe() -> dict[str, Any] | None:
        obj = get(cluster, namespace, "modeldeployment", name)
        seen[0] = status = (obj or {}).get("status") or {}
        return obj if check(status) else None

    def why() -> str:
        return f"status: {seen[0]}\n{mesh.summary() if mesh else ''}"

    return eventually(probe, timeout=timeout, what=what, why=why, interval=0.5)


class Mesh:
    """Steady traffic to every ready serving pod of one ModelDeployment, as Istio would
    send it; remembers the answers of each revision."""

    def __init__(self, cluster: Cluster, namespace: str, name: str, body: dict[str, Any]):
        self.cluster, self.namespace, self.name = cluster, namespace, name
        self.body = body
        self.codes: dict[str, list[int]] = {}
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def pods(self) -> list[tuple[str, str]]:
        selector = f"mlops.maestro.dev/deployment={self.name}"
        pods = items(self.cluster, self.namespace, "pods", selector)
        found = []
        for pod in pods:
            conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
            if conditions.get("Ready") == "True" and pod["status"].get("podIP"):
                revision = pod["metadata"]["labels"]["mlops.maestro.dev/revision"]
                found.append((revision, f"http://{pod['status']['podIP']}:8080"))
        return found

    def run(self) -> None:
        with httpx.Client(timeout=5) as http:
            while not self.stop.is_set():
                # Pods come and go during rollouts: nothing may end the traffic early.
                try:
                    self.send(http)
                except Exception as err:
                    self.errors.append(f"{type(err).__name__}: {err}")
                self.stop.wait(0.2)

    def send(self, http: httpx.Client) -> None:
        for revision, url in self.pods():
            for _ in range(5):
                try:
                    code = http.post(f"{url}/invocations", json=self.body).status_code
                except httpx.HTTPError as err:
                    self.errors.append(f"{url}: {type(err).__name__}: {err}")
                    continue
                self.codes.setdefault(revision, []).append(code)

    def summary(self) -> str:
        counts = {rev: len(codes) for rev, codes in self.codes.items()}
        return f"mesh requests per revision: {counts}; last errors: {self.errors[-3:]}"

    def __enter__(self) -> Mesh:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
