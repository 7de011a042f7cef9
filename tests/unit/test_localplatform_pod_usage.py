"""The pod runner's measure of each container's real usage (pods.usage), the kwok
configuration that turns it into kubelet resource metrics, and what the nodes and the API
server need for metrics-server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from maestro.localplatform.clusterconfig import ClusterConfig
from maestro.localplatform.components import (
    apiserver_argv,
    kwok_config,
    metrics_apiservice,
    node_manifest,
)
from maestro.localplatform.pki import ensure_pki
from maestro.localplatform.pods import usage

pytestmark = pytest.mark.unit

# A command with spaces and a parenthesis, as /proc/<pid>/stat may hold.
STAT = (
    "4242 (python -c (x)) S 4200 4242 4242 0 -1 4194560 100 0 0 0 "
    "250 50 0 0 20 0 1 0 1000 123456789 2048 18446744073709551615"
)


def test_parse_stat_reads_group_cpu_and_rss() -> None:
    pgrp, sample = usage.parse_stat(STAT, page_size=4096, ticks=100)
    assert pgrp == 4242
    assert sample.cpu_seconds == pytest.approx(3.0)
    assert sample.rss_bytes == 2048 * 4096


def test_cores_over_a_window_and_never_negative() -> None:
    a, b = usage.Sample(10.0, 0), usage.Sample(14.0, 0)
    assert usage.cores(a, b, 5.0) == pytest.approx(0.8)
    assert usage.cores(b, a, 5.0) == 0.0
    assert usage.cores(a, b, 0.0) == 0.0


@pytest.mark.parametrize(
    ("cores", "quantity"), [(0.0, "1m"), (0.0004, "1m"), (0.412, "412m"), (1.5, "1500m")]
)
def test_cpu_quantity_has_a_floor_of_1m(cores: float, quantity: str) -> None:
    assert usage.cpu_quantity(cores) == quantity


def test_memory_quantity_has_a_floor_of_1mi() -> None:
    assert usage.memory_quantity(0) == str(1 << 20)
    assert usage.memory_quantity(187342848) == "187342848"


@pytest.mark.parametrize(
    ("written", "measured", "expected"),
    [
        ({}, {"maestro.dev/usage-cpu.server": "5m"}, True),
        ({"maestro.dev/usage-cpu.server": "400m"}, {"maestro.dev/usage-cpu.server": "410m"}, False),
        ({"maestro.dev/usage-cpu.server": "400m"}, {"maestro.dev/usage-cpu.server": "900m"}, True),
        ({"maestro.dev/usage-cpu.server": "1m"}, {"maestro.dev/usage-cpu.server": "15m"}, False),
        (
            {"maestro.dev/usage-memory.server": "100000000"},
            {"maestro.dev/usage-memory.server": "101000000"},
            False,
        ),
        (
            {"maestro.dev/usage-memory.server": "100000000"},
            {"maestro.dev/usage-memory.server": "150000000"},
            True,
        ),
    ],
    ids=[
        "first",
        "small-cpu-move",
        "big-cpu-move",
        "idle-jitter",
        "small-memory-move",
        "big-memory-move",
    ],
)
def test_only_noticeable_moves_are_written(
    written: dict[str, str], measured: dict[str, str], expected: bool
) -> None:
    assert bool(usage.annotations_to_write(written, measured)) is expected


def test_sample_groups_measures_a_busy_process_group() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        first = usage.sample_groups({busy.pid})[busy.pid]
        start = time.monotonic()
        time.sleep(1.0)
        second = usage.sample_groups({busy.pid, os.getpid() + 10**7})
        assert set(second) == {busy.pid}
        used = usage.cores(first, second[busy.pid], time.monotonic() - start)
        assert used > 0.3
        assert second[busy.pid].rss_bytes > 1 << 20
    finally:
        busy.kill()
        busy.wait()


def test_kwok_config_reads_the_runners_annotations() -> None:
    docs = list(yaml.safe_load_all(kwok_config(ClusterConfig())))
    kinds = [d["kind"] for d in docs]
    assert kinds == ["KwokConfiguration", "ClusterResourceUsage", "Metric"]
    cpu = docs[1]["spec"]["usages"][0]["usage"]["cpu"]["expression"]
    assert '"maestro.dev/usage-cpu." + container.name' in cpu
    assert docs[2]["spec"]["path"] == "/metrics/nodes/{nodeName}/metrics/resource"
    names = {m["name"] for m in docs[2]["spec"]["metrics"]}
    assert {"container_cpu_usage_seconds_total", "container_memory_working_set_bytes"} <= names


def test_nodes_name_their_metrics_path_and_a_local_address() -> None:
    node = yaml.safe_load(node_manifest("kwok-node-0", ClusterConfig()).split("---")[0])
    assert node["metadata"]["annotations"]["metrics.k8s.io/resource-metrics-path"] == (
        "/metrics/nodes/kwok-node-0/metrics/resource"
    )
    assert node["status"]["addresses"] == [{"type": "InternalIP", "address": "127.0.0.1"}]


def test_apiserver_has_the_aggregation_layer(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, "10.96.0.1")
    argv = apiserver_argv(ClusterConfig(), pki)
    assert f"--requestheader-client-ca-file={pki.front_proxy_ca.cert}" in argv
    assert f"--proxy-client-cert-file={pki.front_proxy_client.cert}" in argv
    assert "--requestheader-allowed-names=front-proxy-client" in argv
    docs = list(yaml.safe_load_all(metrics_apiservice(ClusterConfig())))
    assert docs[1]["spec"]["service"]["port"] == ClusterConfig().metrics_server_port
