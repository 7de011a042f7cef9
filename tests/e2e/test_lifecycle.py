"""The lifecycle of each kind through its custom resources only, as a user of any cluster sees
it with kubectl: apply the examples of manifests/examples, read their status and Events,
change one, delete them; bad input is refused by the API server naming the field.

No operator code runs in the test process and nothing but the API server is asked (no
MLflow, no Prometheus), so the same tests run on the local platform (`make test`) and on kind
or any cluster where an operator runs (`make e2e KUBECONFIG=...`). What each object settles at
depends on what that operator is given (MLflow for TrainingRuns and ModelDeployments, the
models in its registry), so the tests hold every outcome to the contract shared by every kind:
a phase, observedGeneration, a Ready condition of the current generation whose reason is one
of the shared vocabulary (maestro.operators.api.common.Reason, the API's published list), and
an Event announcing that reason.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from maestro.localplatform.wait import eventually
from maestro.operators.api.common import Reason
from tests.conftest import Cluster

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"
KINDS = ("TrainingRun", "ModelDeployment", "ABTest", "DriftCheck")
REASONS = frozenset(reason.value for reason in Reason)
SETTLE_TIMEOUT = 60  # seconds; the local operator settles each example in a few

Obj = dict[str, Any]


def example(kind: str) -> Obj:
    doc: Obj = yaml.safe_load((EXAMPLES / f"{kind.lower()}.yaml").read_text())
    return doc


def contains(actual: Any, expected: Any) -> bool:
    """`actual` is `expected` with, at most, fields added (the API server's defaults)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and contains(actual[key], value) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(contains(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return bool(actual == expected)


def get(cluster: Cluster, namespace: str, kind: str, name: str) -> Obj | None:
    proc = cluster.kubectl(
        "get", kind.lower(), name, "-n", namespace, "-o", "json", "--ignore-not-found"
    )
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def ready_condition(obj: Obj) -> Obj | None:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), None)


def event_reasons(cluster: Cluster, namespace: str, kind: str, name: str) -> set[str]:
    out = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    return {
        e["reason"]
        for e in json.loads(out)["items"]
        if (e["involvedObject"].get("kind"), e["involvedObject"]["name"]) == (kind, name)
    }


def wait_settled(cluster: Cluster, namespace: str, kind: str, name: str) -> Obj:
    """The object once its status reflects its current generation: a phase, observedGeneration
    and a Ready condition of that generation with a reason of the vocabulary, announced by an
    Event of the same reason (the reason may move on while waiting: a TrainingRun runs)."""
    seen: dict[str, Any] = {}

    def probe() -> Obj | None:
        obj = get(cluster, namespace, kind, name)
        seen["status"] = (obj or {}).get("status")
        if obj is None:
            return None
        generation = obj["metadata"]["generation"]
        status = obj.get("status") or {}
        ready = ready_condition(obj)
        if (
            ready is None
            or status.get("observedGeneration") != generation
            or ready.get("observedGeneration") != generation
        ):
            return None
        seen["events"] = reasons = event_reasons(cluster, namespace, kind, name)
        return obj if ready["reason"] in reasons else None

    def why() -> str:
        return (
            f"last status: {json.dumps(seen.get('status'), indent=1)}\n"
            f"Event reasons: {sorted(seen.get('events', ()))}\n"
            "(is a Maestro operator running in the cluster?)"
        )

    obj = eventually(
        probe, timeout=SETTLE_TIMEOUT, what=f"{kind}/{name} settled", why=why, interval=0.5
    )
    ready = ready_condition(obj)
    assert ready is not None
    assert ready["reason"] in REASONS, f"{kind}/{name}: reason {ready['reason']} not in {REASONS}"
    assert ready["status"] in ("True", "False", "Unknown"), ready
    assert obj["status"].get("phase"), obj["status"]
    return obj


def test_examples_settle_report_through_events_and_go_away(
    running_operator: None, cluster: Cluster, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-k", str(EXAMPLES))

    for kind in KINDS:
        applied = example(kind)
        obj = wait_settled(cluster, namespace, kind, applied["metadata"]["name"])
        # The operator writes status and the objects it owns, never the user's spec (the API
        # server's defaults aside).
        assert contains(obj["spec"], applied["spec"]), f"{kind}: spec rewritten: {obj['spec']}"

    cluster.kubectl("delete", "-n", namespace, "-k", str(EXAMPLES), "--timeout=60s")
    for kind in KINDS:
        left = cluster.kubectl("get", kind.lower(), "-n", namespace, "-o", "name").stdout
        assert left.strip() == "", f"{kind} left after delete: {left}"


def test_a_spec_change_is_observed_as_a_new_generation(
    running_operator: None, cluster: Cluster, namespace: str
) -> None:
    abtest = example("ABTest")
    name = abtest["metadata"]["name"]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(abtest))
    first = wait_settled(cluster, namespace, "ABTest", name)

    patch = json.dumps({"spec": {"trafficPercent": 30}})
    cluster.kubectl("patch", "abtest", name, "-n", namespace, "--type=merge", "-p", patch)
    second = wait_settled(cluster, namespace, "ABTest", name)

    assert second["metadata"]["generation"] == first["metadata"]["generation"] + 1
    assert second["spec"]["trafficPercent"] == 30


BAD_INPUT = {
    # id: (kind, the field changed, its bad value, what the API server's message names)
    "trainingrun-framework": ("TrainingRun", "framework", "Keras", "spec.framework"),
    "modeldeployment-uri": ("ModelDeployment", "model", {"uri": "http://x/m"}, "spec.model.uri"),
    "abtest-traffic": ("ABTest", "trafficPercent", 100, "spec.trafficPercent"),
    "driftcheck-schedule": ("DriftCheck", "schedule", "every hour", "spec.schedule"),
}


@pytest.mark.parametrize(
    ("kind", "field", "value", "named"), BAD_INPUT.values(), ids=list(BAD_INPUT)
)
def test_invalid_input_is_refused_by_the_api_naming_the_field(
    cluster: Cluster, namespace: str, kind: str, field: str, value: Any, named: str
) -> None:
    bad = copy.deepcopy(example(kind))
    bad["spec"][field] = value

    proc = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(bad), check=False
    )

    assert proc.returncode != 0, f"accepted: {json.dumps(bad['spec'])}"
    assert named in proc.stderr, proc.stderr
    assert get(cluster, namespace, kind, bad["metadata"]["name"]) is None
