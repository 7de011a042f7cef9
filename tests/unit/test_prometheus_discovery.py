"""The local Prometheus' pod discovery labels targets as Prometheus' Kubernetes pod role
does, so the scrape config's relabel rules are the ones a kubernetes_sd job uses."""

from __future__ import annotations

from typing import Any

import pytest

from maestro.localplatform.prometheus import scrape_config
from maestro.localplatform.prometheus_sd import label_name, pod_target_groups

pytestmark = pytest.mark.unit


def pod(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "team-a",
            "name": "iris-v2-abc",
            "uid": "u-1",
            "labels": {"mlops.maestro.dev/revision": "v2"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "iris-v2", "controller": True}],
        },
        "spec": {
            "nodeName": "kwok-node-0",
            "containers": [
                {
                    "name": "server",
                    "image": "maestro:1",
                    "ports": [
                        {"name": "http", "containerPort": 8080},
                        {"name": "grpc", "containerPort": 8081, "protocol": "TCP"},
                    ],
                },
                {"name": "sidecar", "image": "proxy:1"},
            ],
        },
        "status": status,
    }


def test_a_pod_without_an_ip_has_no_targets() -> None:
    assert pod_target_groups(pod(phase="Pending")) == []


def test_one_target_per_container_port_and_the_bare_ip_for_a_container_without_ports() -> None:
    groups = pod_target_groups(
        pod(
            podIP="10.244.0.7",
            hostIP="10.244.0.7",
            phase="Running",
            conditions=[{"type": "Ready", "status": "True"}],
        )
    )
    assert [g["targets"] for g in groups] == [
        ["10.244.0.7:8080"],
        ["10.244.0.7:8081"],
        ["10.244.0.7"],
    ]
    http = groups[0]["labels"]
    assert http["__meta_kubernetes_namespace"] == "team-a"
    assert http["__meta_kubernetes_pod_name"] == "iris-v2-abc"
    assert http["__meta_kubernetes_pod_ip"] == "10.244.0.7"
    assert http["__meta_kubernetes_pod_phase"] == "Running"
    assert http["__meta_kubernetes_pod_ready"] == "true"
    assert http["__meta_kubernetes_pod_label_mlops_maestro_dev_revision"] == "v2"
    assert http["__meta_kubernetes_pod_labelpresent_mlops_maestro_dev_revision"] == "true"
    assert http["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"
    assert http["__meta_kubernetes_pod_annotation_prometheus_io_port"] == "8080"
    assert http["__meta_kubernetes_pod_controller_kind"] == "ReplicaSet"
    assert http["__meta_kubernetes_pod_container_port_name"] == "http"
    assert http["__meta_kubernetes_pod_container_port_number"] == "8080"
    assert "__meta_kubernetes_pod_container_port_number" not in groups[2]["labels"]
    assert groups[2]["labels"]["__meta_kubernetes_pod_container_name"] == "sidecar"


@pytest.mark.parametrize(
    ("name", "sanitized"),
    [
        ("prometheus.io/scrape", "prometheus_io_scrape"),
        ("app.kubernetes.io/name", "app_kubernetes_io_name"),
    ],
)
def test_label_names_are_sanitized_like_prometheus(name: str, sanitized: str) -> None:
    assert label_name(name) == sanitized


def test_the_scrape_config_keeps_annotated_running_pods_and_copies_their_labels() -> None:
    job = scrape_config("http://127.0.0.1:9095/targets", "1s")["scrape_configs"][0]
    rules = job["relabel_configs"]
    keep = {r["source_labels"][0]: r["regex"] for r in rules if r["action"] == "keep"}
    assert keep == {
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_phase": "Pending|Running",
    }
    copied = {r["target_label"]: r["source_labels"] for r in rules if r["action"] == "replace"}
    assert copied["namespace"] == ["__meta_kubernetes_namespace"]
    assert copied["pod"] == ["__meta_kubernetes_pod_name"]
    assert copied["deployment"] == ["__meta_kubernetes_pod_label_mlops_maestro_dev_deployment"]
    assert copied["revision"] == ["__meta_kubernetes_pod_label_mlops_maestro_dev_revision"]
    assert copied["__address__"] == [
        "__meta_kubernetes_pod_ip",
        "__meta_kubernetes_pod_annotation_prometheus_io_port",
    ]
    assert copied["__metrics_path__"] == ["__meta_kubernetes_pod_annotation_prometheus_io_path"]
