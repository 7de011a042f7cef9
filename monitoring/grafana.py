"""Grafana's side of the dashboards as code: the typed model the dashboards are written in
(Dashboard, Row, Panel, Target, Variable) and its rendering into Grafana's JSON model
(schema 39: rows, a 24-column grid, a Prometheus datasource variable). Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
WIDTH = 24  # Grafana's grid


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat", "table"
    width: int = 12
    description: str = ""


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    name: str
    query: str  # label_values(...)
    label: str = ""


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = field(default_factory=tuple)

    def queries(self) -> list[str]:
        """Every panel target's PromQL (template variables left in)."""
        return [t.expr for row in self.rows for p in row.panels for t in p.targets]


def _t(expr: str, legend: str = "") -> Target:
    return Target(expr, legend)


# --- Grafana's JSON model ---------------------------------------------------------------------


def _variable(v: Variable) -> Json:
    return {
        "name": v.name,
        "label": v.label or v.name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": v.query, "refId": f"var-{v.name}"},
        "definition": v.query,
        "refresh": 2,
        "includeAll": False,
        "multi": False,
        "sort": 1,
    }


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> Json:
    out: Json = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": t.expr,
                "legendFormat": t.legend,
                **({"instant": True, "format": "table"} if panel.kind == "table" else {}),
            }
            for i, t in enumerate(panel.targets)
        ],
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {},
    }
    if panel.description:
        out["description"] = panel.description
    return out


def to_json(d: Dashboard) -> Json:
    panels: list[Json] = []
    panel_id, y = 1, 0
    for row in d.rows:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id, y, x = panel_id + 1, y + 1, 0
        for panel in row.panels:
            if x + panel.width > WIDTH:
                x, y = 0, y + 8
            panels.append(_panel(panel, panel_id, x, y))
            panel_id, x = panel_id + 1, x + panel.width
        y += 8
    datasource_var = {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "refresh": 1,
    }
    return {
        "uid": d.uid,
        "title": d.title,
        "description": d.description,
        "tags": ["maestro"],
        "editable": True,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "timezone": "browser",
        "templating": {"list": [datasource_var, *(_variable(v) for v in d.variables)]},
        "annotations": {"list": []},
        "panels": panels,
    }
