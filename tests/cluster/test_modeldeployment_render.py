"""Every object the ModelDeployment renderer produces is accepted by a real API server.

`kubectl apply --dry-run=server --validate=strict` runs each object through defaulting,
strict schema validation (unknown fields are errors) and admission, against the local
control plane with the upstream Istio and Prometheus Operator CRDs installed. The owner is
a real ModelDeployment of the test's namespace, and the namespace warns on anything the
restricted Pod Security profile would refuse.
"""

from __future__ import annotations

import json

import pytest
import yaml

from maestro.operators.api.modeldeployment import ModelDeploymentSpec
from maestro.operators.modeldeployment.render import DeploymentIds, render
from tests.conftest import Cluster
from tests.modeldeployment_render_cases import CASES, PLANS

pytestmark = pytest.mark.cluster

NAME = "iris"


@pytest.mark.parametrize("case", CASES)
def test_rendered_objects_pass_server_side_dry_run(
    cluster: Cluster, namespace: str, case: str
) -> None:
    spec_fields, plan, settings = CASES[case]
    cluster.kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/warn=restricted",
        "pod-security.kubernetes.io/warn-version=latest",
    )
    owner = {
        "apiVersion": "mlops.maestro.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": spec_fields,
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(owner))
    created = json.loads(
        cluster.kubectl("get", "modeldeployment", NAME, "-n", namespace, "-o", "json").stdout
    )
    ids = DeploymentIds(namespace, NAME, created["metadata"]["uid"])
    objects = render(ids, ModelDeploymentSpec.model_validate(spec_fields), PLANS[plan], settings)
    assert objects

    proc = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-n",
        namespace,
        "-f",
        "-",
        "-o",
        "json",
        input=yaml.safe_dump_all(objects),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # Pod Security (warn mode), deprecated APIs and unknown annotations all print warnings.
    assert "Warning" not in proc.stderr, proc.stderr
    accepted = json.loads(proc.stdout)
    listed = accepted["items"] if accepted.get("kind") == "List" else [accepted]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in listed) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in objects
    )
    # Nothing was created: a dry run only.
    left = cluster.kubectl(
        "get", "deployments,services", "-n", namespace, "-o", "name", check=False
    ).stdout
    assert left.strip() == "", left
