"""ModelDeployment renderers against golden YAML files (tests/golden/modeldeployment/).

Regenerate after an intended change with MAESTRO_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from maestro.operators.api.modeldeployment import ModelDeploymentSpec
from maestro.operators.core.settings import OperatorConfig
from maestro.operators.modeldeployment.decide import RevisionPlan
from maestro.operators.modeldeployment.render import (
    LABEL_REVISION,
    OWNED_KINDS,
    ServingSettings,
    base_name,
    label_value,
    object_name,
    owned_kinds,
    render,
    selector,
    service_url,
    stale,
    tracking_port,
)
from maestro.security.pod_security import restricted_violations
from tests.modeldeployment_render_cases import (
    CASES,
    IDS,
    PLAIN,
    PLANS,
    SETTINGS,
    V3,
    V4,
    rendered,
)

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "modeldeployment"


def only(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("case", CASES)
def test_render_matches_golden(case: str) -> None:
    text = yaml.safe_dump_all(rendered(case), sort_keys=False)
    path = GOLDEN / f"{case}.yaml"
    if os.environ.get("MAESTRO_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with MAESTRO_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{case} differs from {path}"


@pytest.mark.parametrize("case", CASES)
def test_every_pod_meets_the_restricted_profile_with_a_read_only_root(case: str) -> None:
    for deployment in (o for o in rendered(case) if o["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert restricted_violations(pod) == []
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
        assert {"name": tmp["name"], "emptyDir": {}} in pod["volumes"]
        assert pod["automountServiceAccountToken"] is False
        assert (
            pod["terminationGracePeriodSeconds"]
            > container["lifecycle"]["preStop"]["sleep"]["seconds"]
        )


@pytest.mark.parametrize("case", CASES)
def test_everything_is_owned_labelled_and_validly_named(case: str) -> None:
    objects = rendered(case)
    kinds = {(k.api_version, k.kind) for k in OWNED_KINDS}
    for obj in objects:
        meta = obj["metadata"]
        assert (obj["apiVersion"], obj["kind"]) in kinds
        (owner,) = meta["ownerReferences"]
        assert owner["uid"] == IDS.uid and owner["controller"] and owner["blockOwnerDeletion"]
        assert meta["namespace"] == "ml"
        assert meta["labels"]["mlops.maestro.dev/deployment"] == "iris"
        assert meta["labels"]["app.kubernetes.io/instance"] == "iris"
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", meta["name"]) and len(meta["name"]) <= 63


@pytest.mark.parametrize("case", CASES)
def test_pods_carry_the_contract_labels_and_scrape_annotations(case: str) -> None:
    spec_fields, plan, _ = CASES[case]
    port = str(spec_fields.get("port", 8080))
    for revision in PLANS[plan].revisions:
        deployment = only(rendered(case), "Deployment", f"iris-{revision.name}")
        template = deployment["spec"]["template"]["metadata"]
        assert {
            "app.kubernetes.io/name": "maestro-serving",
            "app.kubernetes.io/instance": "iris",
            "mlops.maestro.dev/deployment": "iris",
            "mlops.maestro.dev/revision": revision.name,
        }.items() <= template["labels"].items()
        # A promotion changes the role; pods must not restart for it.
        assert "mlops.maestro.dev/role" not in template["labels"]
        assert deployment["metadata"]["labels"]["mlops.maestro.dev/role"] == revision.role.value
        assert {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": port,
            "prometheus.io/path": "/metrics",
        }.items() <= template["annotations"].items()
        assert deployment["spec"]["selector"]["matchLabels"].items() <= template["labels"].items()


def test_the_server_gets_the_contract_env_and_args() -> None:
    objects = rendered("canary")
    container = only(objects, "Deployment", "iris-v4")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [
        "--model-uri",
        V4,
        "--model-name",
        "iris-classifier",
        "--port",
        "8080",
        "--grpc-port",
        "8081",
        "--secret-file",
        "FS_TOKEN=/vault/secrets/fs_token",
        "--secret-file",
        "DB_PASSWORD=/vault/secrets/db_password",
    ]
    env = env_of(container)
    assert {
        "MLFLOW_TRACKING_URI": "https://mlflow.example.com",
        "MAESTRO_DEPLOYMENT": "iris",
        "MAESTRO_REVISION": "v4",
        "MAESTRO_MODEL_VERSION": "4",
        "MAESTRO_SERVE_MODEL_URI": V4,
        "MAESTRO_SERVE_MODEL_NAME": "iris-classifier",
        "MAESTRO_SERVE_PORT": "8080",
        "MAESTRO_SERVE_GRPC_PORT": "8081",
        "MAESTRO_SERVE_PREDICTION_LOG": (
            "/var/log/maestro/predictions/ml/iris/v4/$(POD_NAME).jsonl"
        ),
        "MAESTRO_SERVE_PREDICTION_LOG_SAMPLE": "0.25",
    }.items() <= env.items()
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # $(POD_NAME) expands only from variables defined before it.
    names = [e["name"] for e in container["env"]]
    assert names.index("POD_NAME") < names.index("MAESTRO_SERVE_PREDICTION_LOG")
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    pod = only(objects, "Deployment", "iris-v4")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "iris-serving"
    assert {"name": "predictions", "persistentVolumeClaim": {"claimName": "prediction-logs"}} in (
        pod["volumes"]
    )


def test_the_plain_command_is_maestro_serve() -> None:
    container = only(rendered("rolling"), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["maestro", "serve"]
    assert "MAESTRO_SERVE_PREDICTION_LOG" not in env_of(container)


def test_shadow_pods_serve_the_stable_model_and_shadow_the_candidate() -> None:
    objects = rendered("shadow")
    container = only(objects, "Deployment", "iris-v4")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-2:] == ["--shadow-model-uri", V4]
    assert container["args"][:2] == ["--model-uri", V3]
    route = only(objects, "VirtualService")["spec"]["http"][0]
    assert [(r["destination"]["subset"], r["weight"]) for r in route["route"]] == [("v3", 100)]
    assert route["mirror"]["subset"] == "v4"
    assert route["mirrorPercentage"] == {"value": 10.0}


def test_secrets_come_from_vault_agent_files_the_server_reads() -> None:
    objects = rendered("canary")
    deployment = only(objects, "Deployment", "iris-v3")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    vault = {k: v for k, v in annotations.items() if k.startswith("vault.hashicorp.com/")}
    assert vault["vault.hashicorp.com/agent-inject"] == "true"
    # The deployment's own role, bound to its own ServiceAccount.
    assert vault["vault.hashicorp.com/role"] == "maestro-serving-ml.iris"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "iris-serving"
    account = only(objects, "ServiceAccount", "iris-serving")
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    # A sidecar stays to render new versions: no pre-populate-only.
    assert "vault.hashicorp.com/agent-pre-populate-only" not in vault
    assert vault["vault.hashicorp.com/agent-init-first"] == "true"
    assert vault["vault.hashicorp.com/template-static-secret-render-interval"] == "1m"
    assert vault["vault.hashicorp.com/agent-inject-secret-FS_TOKEN"] == "secret/data/maestro/iris"
    # The file holds the bare value.
    assert vault["vault.hashicorp.com/agent-inject-template-FS_TOKEN"] == (
        '{{- with secret "secret/data/maestro/iris" -}}'
        '{{ index .Data.data "feature-store-token" }}{{- end }}'
    )
    for key in vault:
        assert len(key.split("/", 1)[1]) <= 63, key
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["maestro", "serve"]
    assert "FS_TOKEN=/vault/secrets/fs_token" in container["args"]
    # Values never appear in the pod spec.
    assert "FS_TOKEN" not in env_of(container)
    token = next(
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "vault-token"
    )
    assert token["projected"]["sources"][0]["serviceAccountToken"]["path"] == "token"


def test_a_deployment_without_secrets_has_no_service_account_of_its_own() -> None:
    objects = rendered("rolling")
    assert not [o for o in objects if o["kind"] == "ServiceAccount"]


def test_autoscaling_targets_become_hpa_metrics() -> None:
    hpa = only(rendered("canary"), "HorizontalPodAutoscaler", "iris-v4")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "iris-v4",
    }
    metrics = {
        m.get("resource", m.get("pods", {})).get("name") or m["pods"]["metric"]["name"]: m
        for m in hpa["spec"]["metrics"]
    }
    assert metrics["cpu"]["resource"]["target"]["averageUtilization"] == 60
    assert metrics["memory"]["resource"]["target"]["averageUtilization"] == 80
    assert metrics["maestro_requests_per_second"]["pods"]["target"]["averageValue"] == "50"
    # The Deployment leaves its replica count to the HPA.
    assert "replicas" not in only(rendered("canary"), "Deployment", "iris-v4")["spec"]


def test_without_autoscaling_replicas_are_pinned_and_no_hpa_exists() -> None:
    objects = rendered("blue-green-plain")
    assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    assert only(objects, "Deployment", "iris-v4")["spec"]["replicas"] == 4


def test_canary_weights_route_by_subset_with_every_revision_behind_the_service() -> None:
    objects = rendered("canary")
    route = only(objects, "VirtualService")["spec"]["http"][0]["route"]
    assert [(r["destination"]["subset"], r["weight"]) for r in route] == [("v3", 90), ("v4", 10)]
    host = "iris.ml.svc.cluster.local"
    assert {r["destination"]["host"] for r in route} == {host}
    rule = only(objects, "DestinationRule")["spec"]
    assert rule["host"] == host
    assert rule["subsets"] == [
        {"name": "v3", "labels": {LABEL_REVISION: "v3"}},
        {"name": "v4", "labels": {LABEL_REVISION: "v4"}},
    ]
    assert LABEL_REVISION not in only(objects, "Service", "iris")["spec"]["selector"]


@pytest.mark.parametrize(
    ("plan", "selected"),
    [("steady", "v3"), ("blue-green", "v3"), ("shadow", "v3"), ("canary", None)],
)
def test_without_istio_the_service_selects_the_revisions_with_traffic(
    plan: str, selected: str | None
) -> None:
    spec = ModelDeploymentSpec.model_validate({"model": {"uri": V3}})
    objects = render(IDS, spec, PLANS[plan], PLAIN)
    assert only(objects, "Service", "iris")["spec"]["selector"].get(LABEL_REVISION) == selected
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"VirtualService", "DestinationRule", "ServiceMonitor", "PrometheusRule"}


def test_a_pdb_per_revision_never_blocks_a_drain() -> None:
    objects = rendered("canary")
    for name in ("iris-v3", "iris-v4"):
        pdb = only(objects, "PodDisruptionBudget", name)["spec"]
        assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb
        assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_network_policy_lets_in_the_port_and_out_dns_mlflow_vault_and_otlp() -> None:
    policy = only(rendered("canary"), "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "maestro-serving",
        "app.kubernetes.io/instance": "iris",
    }
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [
        {"protocol": "TCP", "port": 8080},
        {"protocol": "TCP", "port": 8081},
    ]
    namespaces = {
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in ingress["from"]
        if "namespaceSelector" in p
    }
    # The callers' namespaces (batch; ml is its own, a podSelector), Istio's, Prometheus'.
    assert namespaces == {"batch", "istio-system", "monitoring"}
    assert {"podSelector": {}} in ingress["from"]
    egress_ports = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    # DNS, MLflow over https, Vault (the spec has secrets), the OTLP collector, istiod, the
    # configured extra port, and the deployment's own pods (an ABTest's champion forwards to
    # its challenger).
    assert egress_ports == {
        ("UDP", 53),
        ("TCP", 53),
        ("TCP", 443),
        ("TCP", 8200),
        ("TCP", 4318),
        ("TCP", 15012),
        ("TCP", 8080),
    }
    own = {"podSelector": {"matchLabels": policy["podSelector"]["matchLabels"]}}
    assert {"to": [own], "ports": [{"protocol": "TCP", "port": 8080}]} in policy["egress"]
    assert own in ingress["from"]


def test_without_callers_only_the_own_namespace_may_call() -> None:
    objects = rendered("rolling")
    (ingress,) = only(objects, "NetworkPolicy")["spec"]["ingress"]
    assert ingress["from"][0] == {"podSelector": {}}
    rules = only(objects, "AuthorizationPolicy")["spec"]["rules"]
    assert rules[0]["from"] == [{"source": {"namespaces": ["ml"]}}]
    assert only(objects, "PeerAuthentication")["spec"]["mtls"] == {"mode": "STRICT"}


def test_callers_by_identity_and_namespace() -> None:
    policy = only(rendered("canary"), "AuthorizationPolicy")["spec"]
    assert policy["action"] == "ALLOW"
    callers, metrics = policy["rules"]
    assert callers["from"] == [
        {"source": {"principals": ["cluster.local/ns/ml/sa/web"]}},
        {"source": {"namespaces": ["batch"]}},
    ]
    assert metrics["to"][0]["operation"]["paths"] == ["/metrics"]
    assert metrics["from"] == [{"source": {"namespaces": ["monitoring"]}}]


def test_no_mesh_objects_without_istio() -> None:
    kinds = {o["kind"] for o in rendered("blue-green-plain")}
    assert not kinds & {"PeerAuthentication", "AuthorizationPolicy", "VirtualService"}


@pytest.mark.parametrize(
    ("uri", "port"),
    [
        ("http://mlflow.mlops:5000", 5000),
        ("https://mlflow.example.com", 443),
        ("http://mlflow", 80),
        ("databricks", None),
    ],
)
def test_tracking_port(uri: str, port: int | None) -> None:
    assert tracking_port(uri) == port


def test_alerts_use_the_analysis_limits_and_link_runbooks() -> None:
    rule = only(rendered("canary"), "PrometheusRule")
    (group,) = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert set(alerts) == {
        "MaestroModelErrorRateHigh",
        "MaestroModelLatencyP95High",
        "MaestroModelNotReady",
        "MaestroModelOverloaded",
        "MaestroModelQueueSaturated",
    }
    assert alerts["MaestroModelErrorRateHigh"]["expr"].endswith("> 0.02")
    assert 'code=~"5.."' in alerts["MaestroModelErrorRateHigh"]["expr"]
    assert alerts["MaestroModelLatencyP95High"]["expr"].endswith("> 0.3")
    for name, alert in alerts.items():
        assert alert["labels"]["severity"] in ("warning", "critical")
        assert {"summary", "description", "runbook_url"} <= alert["annotations"].keys()
        assert alert["annotations"]["runbook_url"].endswith(f"/{name}.md")
        assert 'namespace="ml",deployment="iris"' in alert["expr"]


def test_slo_becomes_recording_rules_and_burn_rate_alerts() -> None:
    """spec.slo of the rolling case (availability 99.5, latency 95% within 100 ms, at least
    50 requests): one group of SLI recordings over the workbook's windows and a page and a
    ticket alert per objective; without spec.slo no such group (canary)."""
    rule = only(rendered("rolling"), "PrometheusRule")
    serving, slo = rule["spec"]["groups"]
    assert serving["name"] == "maestro-serving.ml.iris"
    assert slo["name"] == "maestro-slo.ml.iris"
    records = {r["record"]: r["expr"] for r in slo["rules"] if "record" in r}
    for window in ("5m", "30m", "1h", "6h", "3d"):
        assert (
            f"[{window}]"
            in records[f"deployment:maestro_slo_availability_errors:ratio_rate{window}"]
        )
        latency = records[f"deployment:maestro_slo_latency_errors:ratio_rate{window}"]
        assert 'le="0.1"' in latency and f"[{window}]" in latency
    alerts = {r["alert"]: r for r in slo["rules"] if "alert" in r}
    assert set(alerts) == {
        "MaestroModelAvailabilityBudgetBurnPage",
        "MaestroModelAvailabilityBudgetBurnTicket",
        "MaestroModelLatencyBudgetBurnPage",
        "MaestroModelLatencyBudgetBurnTicket",
    }
    page = alerts["MaestroModelAvailabilityBudgetBurnPage"]
    assert page["labels"]["severity"] == "critical"
    # Budget 0.5%: 14.4x over 1h and 5m, or 6x over 6h and 30m, each with the traffic guard.
    assert "ratio_rate1h{" in page["expr"] and "ratio_rate5m{" in page["expr"]
    assert page["expr"].count("> (14.4 * 0.005)") == 2
    assert page["expr"].count("> (6 * 0.005)") == 2
    assert "increase1h{" in page["expr"] and "increase6h{" in page["expr"]
    assert page["expr"].count(">= 50") == 2
    ticket = alerts["MaestroModelLatencyBudgetBurnTicket"]
    assert ticket["labels"]["severity"] == "warning"
    assert ticket["expr"].count("> (1 * 0.05)") == 2
    assert "ratio_rate3d{" in ticket["expr"] and "increase3d{" in ticket["expr"]
    assert len(only(rendered("canary"), "PrometheusRule")["spec"]["groups"]) == 1
    shadow_groups = only(rendered("shadow"), "PrometheusRule")["spec"]["groups"]
    shadow_alerts = {r.get("alert") for r in shadow_groups[1]["rules"]} - {None}
    assert shadow_alerts == {
        "MaestroModelLatencyBudgetBurnPage",
        "MaestroModelLatencyBudgetBurnTicket",
    }


def test_service_monitor_scrapes_each_revision_service_once() -> None:
    objects = rendered("canary")
    monitor = only(objects, "ServiceMonitor")["spec"]
    selected = [
        o["metadata"]["name"]
        for o in objects
        if o["kind"] == "Service"
        and monitor["selector"]["matchLabels"].items() <= o["metadata"]["labels"].items()
        and LABEL_REVISION in o["metadata"]["labels"]
    ]
    assert selected == ["iris-v3", "iris-v4"]
    assert monitor["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]


def test_an_empty_plan_renders_nothing() -> None:
    spec = ModelDeploymentSpec.model_validate({"model": {"uri": V3}})
    assert render(IDS, spec, RevisionPlan(), SETTINGS) == []


def test_stale_objects_are_the_live_ones_no_longer_rendered() -> None:
    desired = rendered("rolling")
    live = rendered("canary")
    gone = {(o["kind"], o["metadata"]["name"]) for o in stale(desired, live)}
    assert ("Deployment", "iris-v4") in gone and ("Service", "iris-v4") in gone
    assert ("Deployment", "iris-v3") not in gone and ("Service", "iris") not in gone
    assert stale(desired, desired) == []


def test_owned_kinds_follow_the_settings() -> None:
    assert owned_kinds(SETTINGS) == OWNED_KINDS
    groups = {k.api_version.split("/")[0] for k in owned_kinds(PLAIN)}
    assert not groups & {"networking.istio.io", "monitoring.coreos.com"}


def test_settings_come_from_the_operator_config() -> None:
    config = OperatorConfig(
        mlflow_tracking_uri="http://mlflow:5000",
        serving_pod_labels={"maestro.dev/local-run": "true"},
        istio=False,
        serving_egress_ports=[443],
    )
    settings = ServingSettings.from_config(config)
    assert settings.tracking_uri == "http://mlflow:5000"
    assert settings.pod_labels == {"maestro.dev/local-run": "true"}
    assert settings.istio is False and settings.egress_ports == (443,)
    assert service_url(IDS, settings) == "http://iris.ml.svc.cluster.local"
    assert selector(IDS) == "mlops.maestro.dev/deployment=iris"


@pytest.mark.parametrize(
    "name",
    ["iris", "a" * 253, "9lives.v2", "x" * 46 + "-" + "y" * 10, "iris.prod"],
    ids=["short", "longest", "digit-and-dot", "dash-at-cut", "dotted"],
)
def test_names_stay_valid_dns_labels(name: str) -> None:
    base = base_name(name)
    for derived in (base, object_name(name, "v1234567890123"), object_name(name, "0a1b2c3d")):
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", derived), derived
        assert len(derived) <= 63
    assert len(label_value(name)) <= 63
    if name == "iris":
        assert base == "iris"
    else:
        assert base_name(name + "x") != base


def test_hpa_behavior_follows_the_spec() -> None:
    from maestro.operators.modeldeployment.render.traffic import render_hpa
    from tests.modeldeployment_render_cases import STABLE

    spec = ModelDeploymentSpec.model_validate(
        {
            "model": {"uri": "models:/iris@champion"},
            "autoscaling": {
                "behavior": {
                    "scaleUp": {
                        "stabilizationWindow": "15s", "maxPercent": 300, "maxPods": 2,
                        "period": "1m",
                    },
                }
            },
        }
    )  # fmt: skip
    hpa = render_hpa(IDS, spec, STABLE)
    behavior = hpa["spec"]["behavior"]
    assert behavior["scaleUp"] == {
        "stabilizationWindowSeconds": 15,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Percent", "value": 300, "periodSeconds": 60},
            {"type": "Pods", "value": 2, "periodSeconds": 60},
        ],
    }
    # Down stays at the default: after 5 minutes, at most half (or one pod) a minute.
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert behavior["scaleDown"]["policies"][0] == {
        "type": "Percent", "value": 50, "periodSeconds": 60,
    }  # fmt: skip


def test_the_grpc_port_is_a_named_container_port_and_a_service_port_routed_like_http() -> None:
    """gRPC (the Open Inference Protocol's GRPCInferenceService) beside HTTP: the container
    port `grpc` (spec.grpcPort), the Services' port 8081 with appProtocol grpc, probes left
    on HTTP, and Istio routes, policies and the NetworkPolicy listing it as they list HTTP."""
    spec = ModelDeploymentSpec.model_validate(
        {"model": {"uri": "models:/iris@champion"}, "grpcPort": 9000}
    )
    objects = render(IDS, spec, PLANS["canary"], SETTINGS)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "grpc", "containerPort": 9000, "protocol": "TCP"},
    ]
    assert container["readinessProbe"]["httpGet"]["port"] == "http"
    assert container["livenessProbe"]["httpGet"]["port"] == "http"
    assert env_of(container)["MAESTRO_SERVE_GRPC_PORT"] == "9000"
    for service in (o for o in objects if o["kind"] == "Service"):
        assert service["spec"]["ports"][1] == {
            "name": "grpc",
            "port": 8081,
            "targetPort": "grpc",
            "protocol": "TCP",
            "appProtocol": "grpc",
        }
    (ingress,) = only(objects, "NetworkPolicy")["spec"]["ingress"]
    assert {"protocol": "TCP", "port": 9000} in ingress["ports"]
    (to,) = only(objects, "AuthorizationPolicy")["spec"]["rules"][0]["to"]
    assert to["operation"]["ports"] == ["8080", "9000"]
    model, grpc = only(objects, "VirtualService")["spec"]["http"]
    assert (model["name"], model["match"], grpc["name"], grpc["match"]) == (
        "model",
        [{"port": 80}],
        "grpc",
        [{"port": 8081}],
    )
    assert [
        (d["destination"]["subset"], d["destination"]["port"], d["weight"]) for d in grpc["route"]
    ] == [
        ("v3", {"number": 8081}, 90),
        ("v4", {"number": 8081}, 10),
    ]


def test_an_object_stored_with_port_8081_is_refused_naming_grpc_port() -> None:
    """The CRD's rule refuses new objects whose grpcPort equals port; one stored before
    grpcPort existed, with port 8081, gets the default grpcPort 8081 when read: the model
    refuses it too (the operator then says Ready=False InvalidSpec) rather than rendering
    two containerPorts 8081 whose server crash-loops."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="grpcPort must differ from port"):
        ModelDeploymentSpec.model_validate({"model": {"uri": "models:/iris/1"}, "port": 8081})
    moved = ModelDeploymentSpec.model_validate(
        {"model": {"uri": "models:/iris/1"}, "port": 8081, "grpcPort": 9000}
    )
    assert (moved.port, moved.grpc_port) == (8081, 9000)
