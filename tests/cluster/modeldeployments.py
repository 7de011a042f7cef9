"""What the ModelDeployment cluster tests share besides the `registered` model fixture
(tests/cluster/conftest.py): its alias, and waiting on a ModelDeployment's status."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from maestro.localplatform.wait import eventually
from tests.cluster.objects import get
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
