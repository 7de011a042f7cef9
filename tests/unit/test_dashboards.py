"""Dashboards as code: the committed JSON is what monitoring/dashboards.py generates (stable
UIDs, no overlapping panels), and every panel's PromQL names only metrics defined in
maestro.monitoring.metric_names or recorded by the SLO rules."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from maestro.monitoring import dashboards
from maestro.monitoring import metric_names as names
from maestro.monitoring.slo import WINDOWS

pytestmark = pytest.mark.unit

MONITORING = Path(__file__).resolve().parents[2] / "manifests" / "monitoring"
COMMITTED = MONITORING / "dashboards"
DASHBOARDS = dashboards.dashboards()
PANELS = [
    (d.uid, p.title, t.expr)
    for d in DASHBOARDS
    for r in d.rows
    for p in r.panels
    for t in p.targets
]
# Words of PromQL that are not series names.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def known_series() -> set[str]:
    """Every series name monitoring/ defines: families with their exported suffixes, and
    the SLO recordings per window."""
    families = {
        v
        for k, v in vars(names).items()
        if k.isupper() and isinstance(v, str) and v.startswith(("maestro_", "deployment:"))
    }
    series = set()
    for family in families:
        series |= {family, *(family + s for s in ("_total", "_bucket", "_count", "_sum"))}
        series |= {names.slo_series(family, w) for w in WINDOWS}
    return series


def series_in(expr: str) -> set[str]:
    """The series names a PromQL expression selects (functions, label names, strings,
    ranges and grouping lists left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    words = re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?!\s*\()(?![a-zA-Z0-9_:])", text)
    return {w for w in words if w.lower() not in KEYWORDS}


def test_series_in_finds_series_only() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, kind) (rate(a_bucket{x="y z"}[5m])))'
        " / on (kind) b_total > bool 3 and time() - c"
    )
    assert series_in(expr) == {"a_bucket", "b_total", "c"}


def test_committed_dashboards_match_the_code() -> None:
    assert dashboards.diff(COMMITTED) == "", "dashboards are out of date: run `make manifests`"


def test_uids_are_stable_unique_and_named_after_the_files() -> None:
    uids = [d.uid for d in DASHBOARDS]
    assert len(set(uids)) == len(uids) == 4
    for path in COMMITTED.glob("*.json"):
        assert json.loads(path.read_text())["uid"] == path.stem
    assert {d.uid for d in DASHBOARDS} == {
        "maestro-inference",
        "maestro-model-quality",
        "maestro-training",
        "maestro-operator",
    }


@pytest.mark.parametrize(("uid", "title", "expr"), PANELS, ids=[f"{u}:{t}" for u, t, _ in PANELS])
def test_panel_queries_name_only_metrics_defined_in_monitoring(
    uid: str, title: str, expr: str
) -> None:
    found = series_in(expr)
    assert found, f"{uid} / {title}: no series in {expr!r}"
    unknown = found - known_series()
    assert not unknown, f"{uid} / {title} queries {unknown}, not defined in monitoring/"


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d.uid)
def test_panels_do_not_overlap_and_fit_the_grid(dashboard: dashboards.Dashboard) -> None:
    doc: dict[str, Any] = dashboards.to_json(dashboard)
    cells: set[tuple[int, int]] = set()
    for panel in doc["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= dashboards.WIDTH, panel["title"]
        area = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(set(ids)) == len(ids)


def test_the_kustomization_ships_every_dashboard_as_a_sidecar_config_map() -> None:
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    assert kustomization["generatorOptions"]["labels"] == {"grafana_dashboard": "1"}
    shipped = {f for g in kustomization["configMapGenerator"] for f in g["files"]}
    assert shipped == {f"dashboards/{d.uid}.json" for d in DASHBOARDS}
