"""The local pod runner's readiness probes: the port a probe targets and how outcomes
move a container's readiness; and only the pod runner's API and watch-loop modules use
the Kubernetes client."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from maestro.localplatform.pods.probes import probe_target, readiness_after

pytestmark = pytest.mark.unit

CONTAINER = {"name": "server", "ports": [{"name": "http", "containerPort": 8080}]}


@pytest.mark.parametrize(
    ("probe", "port"),
    [
        pytest.param({"httpGet": {"path": "/ready", "port": 9000}}, 9000, id="http-number"),
        pytest.param({"httpGet": {"port": "9001"}}, 9001, id="http-numeric-string"),
        pytest.param({"httpGet": {"port": "http"}}, 8080, id="http-named"),
        pytest.param({"tcpSocket": {"port": "http"}}, 8080, id="tcp-named"),
        pytest.param({"tcpSocket": {"port": 7000}}, 7000, id="tcp-number"),
        pytest.param({"exec": {"command": ["true"]}}, None, id="exec-has-none"),
    ],
)
def test_probe_target(probe: dict[str, Any], port: int | None) -> None:
    assert probe_target(probe, CONTAINER) == port


def test_a_probe_naming_an_undeclared_port_is_refused() -> None:
    with pytest.raises(ValueError, match="'grpc'"):
        probe_target({"httpGet": {"port": "grpc"}}, CONTAINER)


# (ready, failures in a row, this probe's outcome, failureThreshold) -> (ready, failures)
READINESS = [
    pytest.param(False, 0, True, 3, (True, 0), id="first-success"),
    pytest.param(False, 5, True, 3, (True, 0), id="success-resets-failures"),
    pytest.param(False, 0, False, 3, (False, 1), id="unready-stays-unready"),
    pytest.param(True, 0, False, 3, (True, 1), id="one-failure-tolerated"),
    pytest.param(True, 1, False, 3, (True, 2), id="two-failures-tolerated"),
    pytest.param(True, 2, False, 3, (False, 3), id="threshold-reached"),
    pytest.param(True, 0, False, 1, (False, 1), id="threshold-one"),
]


@pytest.mark.parametrize(("ready", "failures", "ok", "threshold", "after"), READINESS)
def test_readiness_after(
    ready: bool, failures: int, ok: bool, threshold: int, after: tuple[bool, int]
) -> None:
    assert readiness_after(ready, failures, ok, threshold) == after


@pytest.mark.parametrize(
    "module",
    [
        "maestro.localplatform.pods.addresses",
        "maestro.localplatform.pods.env",
        "maestro.localplatform.pods.status",
        "maestro.localplatform.pods.lifecycle",
        "maestro.localplatform.pods.probes",
        "maestro.localplatform.pods.processes",
        "maestro.localplatform.pods.network",
    ],
)
def test_only_api_and_runner_import_the_kubernetes_client(module: str) -> None:
    code = f"import {module}, sys; print('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "kubernetes" not in {name.split(".")[0] for name in out.split()}
