"""The cluster DNS's and the training operator's configuration (localplatform.cluster_dns,
localplatform.training_operator) and the Service proxy leaving kube-dns to CoreDNS
(pods.services)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from maestro.localplatform import cluster_dns, training_operator
from maestro.localplatform.clusterconfig import ClusterConfig
from maestro.localplatform.pods.services import HOST_SERVED_LABEL, frontends

pytestmark = pytest.mark.unit

CFG = ClusterConfig()


def test_coredns_serves_the_cluster_domain_on_the_kube_dns_address() -> None:
    text = cluster_dns.corefile(CFG)
    assert text.startswith(".:53 {\n    bind 10.96.0.10\n")
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa {" in text
    assert f"kubeconfig {CFG.kubeconfig} maestro-local" in text
    assert f"ready 127.0.0.1:{CFG.dns_ready_port}" in text
    assert "forward . /etc/resolv.conf" in text
    service = yaml.safe_load(cluster_dns.kube_dns_service(CFG))
    assert service["spec"]["clusterIP"] == CFG.dns_ip
    assert service["metadata"]["labels"][HOST_SERVED_LABEL] == "true"
    assert {(p["port"], p["protocol"]) for p in service["spec"]["ports"]} == {
        (53, "UDP"),
        (53, "TCP"),
    }


def svc(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "kube-system", "name": name, "labels": labels or {}},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53, "protocol": "TCP"}]},
    }


def test_the_proxy_leaves_a_platform_served_cluster_ip_alone() -> None:
    assert [
        f.service for f in frontends([svc("a"), svc("kube-dns", {HOST_SERVED_LABEL: "true"})])
    ] == ["a"]


def test_the_training_operator_runs_with_its_cert_dir_bound_and_only_installed_schemes() -> None:
    argv = training_operator.training_operator_argv(CFG)
    assert argv[:2] == ["unshare", "--mount"]
    script = argv[6]
    assert f"mount --bind {training_operator.training_operator_cert_dir(CFG)} " in script
    assert script.endswith(f'{training_operator.TRAINING_OPERATOR_CERT_DIR} && exec "$@"')
    binary = argv.index(str(CFG.bin / "training-operator"))
    flags = argv[binary + 1 :]
    assert [f for f in flags if f.startswith("--enable-scheme")] == [
        "--enable-scheme=pytorchjob",
        "--enable-scheme=tfjob",
        "--enable-scheme=xgboostjob",
    ]
    assert f"--metrics-bind-address=127.0.0.1:{CFG.training_operator_metrics_port}" in flags
    assert training_operator.training_operator_env(CFG)["MY_POD_NAMESPACE"] == "kubeflow"


def test_the_training_operator_webhooks_reach_its_port_through_its_service() -> None:
    docs = list(yaml.safe_load_all(training_operator.training_operator_manifests(CFG)))
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert kinds == [
        ("Namespace", "kubeflow"),
        ("Secret", "training-operator-webhook-cert"),
        ("Service", "training-operator"),
        ("ValidatingWebhookConfiguration", "validator.training-operator.kubeflow.org"),
    ]
    webhooks = docs[-1]["webhooks"]
    assert [w["rules"][0]["resources"] for w in webhooks] == [
        ["pytorchjobs"],
        ["tfjobs"],
        ["xgboostjobs"],
    ]
    for webhook in webhooks:
        service = webhook["clientConfig"]["service"]
        assert (service["name"], service["namespace"]) == ("training-operator", "kubeflow")
        assert service["port"] == CFG.training_operator_webhook_port


def test_the_workers_init_container_meets_the_restricted_profile() -> None:
    from maestro.security.pod_security import restricted_violations

    template = training_operator.pytorch_init_container_template()
    filled = (
        template.replace("{{.InitContainerImage}}", "img")
        .replace("{{.MaxTries}}", "3")
        .replace("{{.MasterAddr}}", "job-master-0")
    )
    (container,) = yaml.safe_load(filled)
    assert "getent hosts job-master-0" in container["command"][2]
    pod = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [container],
        "containers": [],
    }
    assert restricted_violations(pod) == []
