"""manifests/monitoring builds (`kubectl kustomize`): the platform's PrometheusRule, a
ServiceMonitor for the operator's metrics (keeping the objects' namespace label), and one
ConfigMap per dashboard, labelled for Grafana's dashboard sidecar, holding the dashboard."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from maestro.monitoring import dashboards

pytestmark = pytest.mark.manifests

MONITORING = Path(__file__).resolve().parents[2] / "manifests" / "monitoring"


def test_monitoring_builds_rules_and_sidecar_dashboards(kubectl_bin: Path) -> None:
    proc = subprocess.run(
        [str(kubectl_bin), "kustomize", str(MONITORING)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    objs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(proc.stdout) if d]
    (rule,) = [o for o in objs if o["kind"] == "PrometheusRule"]
    platform = yaml.safe_load((MONITORING / "rules" / "platform.rules.yaml").read_text())
    assert rule["spec"]["groups"] == platform["groups"]
    maps = [o for o in objs if o["kind"] == "ConfigMap"]
    uids = set()
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["namespace"] == "monitoring"
        ((_, text),) = cm["data"].items()
        uids.add(json.loads(text)["uid"])
    assert uids == {d.uid for d in dashboards.dashboards()}
    (monitor,) = [o for o in objs if o["kind"] == "ServiceMonitor"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http-metrics" and endpoint["honorLabels"] is True
    assert len(objs) == 2 + len(maps)
