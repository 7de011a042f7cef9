"""What the local platform's nodes advertise: each its share of this machine, unless
MAESTRO_NODE_CPU, MAESTRO_NODE_MEMORY and MAESTRO_NODE_PODS say otherwise."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from maestro.localplatform import capacity
from maestro.localplatform.clusterconfig import NODE_NAMES, ClusterConfig, ClusterError
from maestro.localplatform.components import node_manifest, node_status_patch

pytestmark = pytest.mark.unit

MEMINFO = """MemTotal:       24684084 kB
MemFree:         1234567 kB
MemAvailable:   20000000 kB
"""
ENV = ("MAESTRO_NODE_CPU", "MAESTRO_NODE_MEMORY", "MAESTRO_NODE_PODS")


@pytest.fixture(autouse=True)
def no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_meminfo_total() -> None:
    assert capacity.meminfo_total_kib(MEMINFO) == 24684084
    with pytest.raises(ValueError):
        capacity.meminfo_total_kib("MemFree: 1 kB\n")


@pytest.mark.parametrize(
    ("cpus", "nodes", "share"),
    [(2, 2, "1"), (4, 2, "2"), (3, 2, "1500m"), (1, 2, "500m"), (1, 3, "333m"), (8, 1, "8")],
)
def test_each_node_gets_its_share_of_the_cpus(cpus: int, nodes: int, share: str) -> None:
    assert capacity.cpu_share(cpus, nodes) == share


def test_each_node_gets_its_share_of_the_memory() -> None:
    assert capacity.memory_share(24684084, 2) == "12342042Ki"


def test_by_default_the_nodes_add_up_to_this_machine() -> None:
    cfg = ClusterConfig()
    assert cfg.node_cpu == capacity.cpu_share(os.cpu_count() or 1, len(NODE_NAMES))
    assert cfg.node_memory == capacity.memory_share(capacity.machine_memory_kib(), len(NODE_NAMES))
    assert cfg.node_pods == "110"


def test_the_environment_sets_each_nodes_capacity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAESTRO_NODE_CPU", "4")
    monkeypatch.setenv("MAESTRO_NODE_MEMORY", "8Gi")
    monkeypatch.setenv("MAESTRO_NODE_PODS", "20")
    cfg = ClusterConfig()
    (node,) = (d for d in yaml.safe_load_all(node_manifest("kwok-node-0", cfg)) if d)
    expected = {"cpu": "4", "memory": "8Gi", "pods": "20"}
    assert node["status"]["capacity"] == node["status"]["allocatable"] == expected
    patch = json.loads(node_status_patch(cfg))["status"]
    assert patch["capacity"] == patch["allocatable"] == expected


@pytest.mark.parametrize("value", ["lots", "2 cores", "-1", ""])
def test_a_capacity_that_is_no_quantity_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    if not value:  # empty means unset: the machine's share
        monkeypatch.setenv("MAESTRO_NODE_CPU", value)
        assert ClusterConfig().node_cpu != ""
        return
    monkeypatch.setenv("MAESTRO_NODE_CPU", value)
    with pytest.raises(ClusterError, match="MAESTRO_NODE_CPU"):
        ClusterConfig()
