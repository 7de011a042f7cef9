"""Grafana dashboards as code, pure: inference, model quality (A/B tests, drift, shadow),
training and the operator, built from the metric names of maestro.monitoring.metric_names
(and the series the SLO rules record), with stable UIDs so links survive regeneration.

`python -m maestro.monitoring.dashboards manifests/monitoring/dashboards [--check]` writes
one JSON file per dashboard (`make manifests`); manifests/monitoring's kustomization turns
them into ConfigMaps labelled `grafana_dashboard: "1"` for Grafana's dashboard sidecar.
A test regenerates them and fails on a difference, and checks that every panel's PromQL
names only metrics defined here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maestro.monitoring import metric_names as n
from maestro.operators.api.generated_files import diff_files, run, write_files

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


# --- the dashboards ------------------------------------------------------------------------
MD = 'namespace="$namespace",deployment="$deployment"'
REQ = n.counter(n.REQUESTS)
DUR = n.buckets(n.REQUEST_DURATION)
MD_VARS = (
    Variable("namespace", f"label_values({n.MODEL_INFO}, namespace)", "Namespace"),
    Variable(
        "deployment",
        f'label_values({n.MODEL_INFO}{{namespace="$namespace"}}, deployment)',
        "ModelDeployment",
    ),
)


def inference() -> Dashboard:
    def quantile(q: str) -> Target:
        return _t(
            f"histogram_quantile({q}, sum by (le, revision) (rate({DUR}{{{MD}}}[5m])))",
            f"p{q[2:]} {{{{revision}}}}",
        )

    return Dashboard(
        uid="maestro-inference",
        title="Maestro / Inference",
        description="Requests, errors, latency and saturation of one ModelDeployment.",
        variables=MD_VARS,
        rows=(
            Row(
                "Traffic and errors",
                (
                    Panel(
                        "Requests by revision and code",
                        (
                            _t(
                                f"sum by (revision, code) (rate({REQ}{{{MD}}}[5m]))",
                                "{{revision}} {{code}}",
                            ),
                        ),
                        unit="reqps",
                    ),
                    Panel(
                        "5xx share by revision",
                        (
                            _t(
                                f'sum by (revision) (rate({REQ}{{{MD},code=~"5.."}}[5m]))'
                                f" / sum by (revision) (rate({REQ}{{{MD}}}[5m]))",
                                "{{revision}}",
                            ),
                        ),
                        unit="percentunit",
                    ),
                ),
            ),
            Row(
                "Latency",
                (
                    Panel(
                        "Request latency",
                        (quantile("0.5"), quantile("0.95"), quantile("0.99")),
                        unit="s",
                    ),
                    Panel(
                        "Requests merged per predict (p50, p95)",
                        tuple(
                            _t(
                                f"histogram_quantile({q}, sum by (le, revision)"
                                f" (rate({n.buckets(n.BATCH_SIZE)}{{{MD}}}[5m])))",
                                f"p{q[2:]} {{{{revision}}}}",
                            )
                            for q in ("0.5", "0.95")
                        ),
                    ),
                ),
            ),
            Row(
                "Saturation",
                (
                    Panel(
                        "Queue in use by pod",
                        (
                            _t(
                                f"max by (revision, pod) ({n.QUEUE_DEPTH}{{{MD}}}"
                                f" / {n.QUEUE_CAPACITY}{{{MD}}})",
                                "{{revision}} {{pod}}",
                            ),
                        ),
                        unit="percentunit",
                    ),
                    Panel(
                        "Turned away (503)",
                        (
                            _t(
                                f'sum by (revision) (rate({REQ}{{{MD},code="503"}}[5m]))',
                                "{{revision}}",
                            ),
                        ),
                        unit="reqps",
                    ),
                    Panel(
                        "Models loaded",
                        (
                            _t(
                                f"sum by (revision, model_version) ({n.MODEL_INFO}{{{MD}}})",
                                "{{revision}} v{{model_version}}",
                            ),
                        ),
                        kind="stat",
                        width=6,
                    ),
                    Panel(
                        "Model load time",
                        (
                            _t(
                                f"max by (revision) ({n.MODEL_LOAD_SECONDS}{{{MD}}})",
                                "{{revision}}",
                            ),
                        ),
                        unit="s",
                        kind="stat",
                        width=6,
                    ),
                ),
            ),
            Row(
                "SLO (ModelDeployments with spec.slo)",
                (
                    Panel(
                        "Error ratio over 1h (availability, latency)",
                        (
                            _t(
                                f"{n.slo_series(n.SLO_AVAILABILITY_ERROR_RATIO, '1h')}{{{MD}}}",
                                "availability",
                            ),
                            _t(
                                f"{n.slo_series(n.SLO_LATENCY_ERROR_RATIO, '1h')}{{{MD}}}",
                                "latency",
                            ),
                        ),
                        unit="percentunit",
                    ),
                    Panel(
                        "Requests in the last hour",
                        (_t(f"{n.slo_series(n.SLO_REQUESTS, '1h')}{{{MD}}}", "requests"),),
                        kind="stat",
                    ),
                ),
            ),
        ),
    )


def model_quality() -> Dashboard:
    return Dashboard(
        uid="maestro-model-quality",
        title="Maestro / Model quality",
        description="A/B tests, drift checks and shadow comparisons of one ModelDeployment.",
        variables=MD_VARS,
        rows=(
            Row(
                "A/B tests",
                (
                    Panel(
                        "Assignments by variant",
                        (
                            _t(
                                f"sum by (abtest, variant)"
                                f" (rate({n.counter(n.ABTEST_ASSIGNMENTS)}{{{MD}}}[5m]))",
                                "{{abtest}} {{variant}}",
                            ),
                        ),
                        unit="reqps",
                    ),
                    Panel(
                        "Mean outcome by variant",
                        (
                            _t(
                                f"sum by (abtest, variant) ({n.ABTEST_OUTCOME_SUM}{{{MD}}})"
                                f" / sum by (abtest, variant)"
                                f" ({n.counter(n.ABTEST_OUTCOMES)}{{{MD}}})",
                                "{{abtest}} {{variant}}",
                            ),
                        ),
                    ),
                    Panel(
                        "Sample-ratio-mismatch p-value",
                        (_t(f"{n.ABTEST_SRM_P_VALUE}{{{MD}}}", "{{abtest}}"),),
                        description="Below 0.001 the split is broken and no decision is taken.",
                    ),
                    Panel(
                        "Test status",
                        (
                            _t(
                                f"{n.ABTEST_STATUS}{{{MD}}} == 1",
                                "{{abtest}}: {{phase}} {{reason}}",
                            ),
                        ),
                        kind="table",
                    ),
                ),
            ),
            Row(
                "Drift",
                (
                    Panel(
                        "Drift share by check",
                        (_t(f"{n.DRIFT_SHARE}{{{MD}}}", "{{driftcheck}}"),),
                        unit="percentunit",
                    ),
                    Panel(
                        "Drifted columns",
                        (
                            _t(
                                f"{n.DRIFT_COLUMN_DRIFTED}{{{MD}}} == 1",
                                "{{driftcheck}} {{column}} ({{test}})",
                            ),
                        ),
                        kind="table",
                    ),
                    Panel(
                        "Time since the last run",
                        (_t(f"time() - {n.DRIFT_LAST_RUN}{{{MD}}}", "{{driftcheck}}"),),
                        unit="s",
                        kind="stat",
                    ),
                    Panel(
                        "Severity (0 Ok, 1 Warning, 2 Critical)",
                        (_t(f"{n.DRIFT_SEVERITY}{{{MD}}}", "{{driftcheck}}"),),
                        kind="stat",
                    ),
                ),
            ),
            Row(
                "Shadow",
                (
                    Panel(
                        "Agreement with the served model",
                        (
                            _t(
                                f"sum (rate({n.counter(n.SHADOW_AGREEMENTS)}{{{MD}}}[5m]))"
                                f" / sum (rate({n.counter(n.SHADOW_REQUESTS)}{{{MD}}}[5m]))",
                                "agreement",
                            ),
                        ),
                        unit="percentunit",
                    ),
                    Panel(
                        "Shadow minus served latency (p50, p95)",
                        tuple(
                            _t(
                                f"histogram_quantile({q}, sum by (le)"
                                f" (rate({n.buckets(n.SHADOW_LATENCY_DELTA)}{{{MD}}}[5m])))",
                                f"p{q[2:]}",
                            )
                            for q in ("0.5", "0.95")
                        ),
                        unit="s",
                    ),
                    Panel(
                        "Feedback received",
                        (
                            _t(
                                f"sum by (revision) (rate({n.counter(n.FEEDBACK)}{{{MD}}}[5m]))",
                                "{{revision}}",
                            ),
                        ),
                        unit="reqps",
                    ),
                ),
            ),
        ),
    )


def training() -> Dashboard:
    ns = 'namespace=~"$namespace"'
    return Dashboard(
        uid="maestro-training",
        title="Maestro / Training",
        description="TrainingRuns by phase, the queue and tuning trials.",
        variables=(
            Variable("namespace", f"label_values({n.TRAINING_PHASE}, namespace)", "Namespace"),
        ),
        rows=(
            Row(
                "Runs",
                (
                    Panel(
                        "Runs by phase",
                        (_t(f"sum by (phase) ({n.TRAINING_PHASE}{{{ns}}})", "{{phase}}"),),
                    ),
                    Panel(
                        "Queued and failed runs",
                        (
                            _t(f'{n.TRAINING_PHASE}{{{ns},phase="Queued"}} == 1', "queued"),
                            _t(f'{n.TRAINING_PHASE}{{{ns},phase="Failed"}} == 1', "failed"),
                        ),
                        kind="table",
                    ),
                ),
            ),
            Row(
                "Tuning",
                (
                    Panel(
                        "Trials by run and state",
                        (
                            _t(
                                f'{n.TRAINING_TRIALS}{{{ns},state!="total"}}',
                                "{{trainingrun}} {{state}}",
                            ),
                        ),
                        width=24,
                    ),
                ),
            ),
        ),
    )


def operator() -> Dashboard:
    errors = n.counter(n.OPERATOR_RECONCILE_ERRORS)
    writes = n.counter(n.OPERATOR_API_WRITES)
    count = n.count(n.OPERATOR_RECONCILE_SECONDS)
    buckets = n.buckets(n.OPERATOR_RECONCILE_SECONDS)
    return Dashboard(
        uid="maestro-operator",
        title="Maestro / Operator",
        description="Reconciles, their errors and time, the work queue and API writes.",
        rows=(
            Row(
                "Reconciles",
                (
                    Panel(
                        "Reconciles by kind",
                        (_t(f"sum by (kind) (rate({count}[5m]))", "{{kind}}"),),
                        unit="ops",
                    ),
                    Panel(
                        "Failed share by kind",
                        (
                            _t(
                                f"sum by (kind) (rate({errors}[5m]))"
                                f" / sum by (kind) (rate({count}[5m]))",
                                "{{kind}}",
                            ),
                        ),
                        unit="percentunit",
                    ),
                    Panel(
                        "Reconcile time (p50, p99)",
                        tuple(
                            _t(
                                f"histogram_quantile({q}, sum by (le, kind) (rate({buckets}[5m])))",
                                f"p{q[2:]} {{{{kind}}}}",
                            )
                            for q in ("0.5", "0.99")
                        ),
                        unit="s",
                    ),
                    Panel(
                        "Work queue depth",
                        (_t(f"sum by (kind) ({n.OPERATOR_WORKQUEUE_DEPTH})", "{{kind}}"),),
                    ),
                ),
            ),
            Row(
                "API server",
                (
                    Panel(
                        "Writes by kind and verb",
                        (
                            _t(
                                f"sum by (kind, verb) (rate({writes}[5m]))",
                                "{{kind}} {{verb}}",
                            ),
                        ),
                        unit="wps",
                        width=24,
                    ),
                ),
            ),
        ),
    )


def dashboards() -> list[Dashboard]:
    return [inference(), model_quality(), training(), operator()]


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


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        f"{d.uid}.json": json.dumps(to_json(d), indent=2, sort_keys=False) + "\n"
        for d in dashboards()
    }


def _generated(out: Path) -> set[str]:
    return {p.name for p in out.glob("maestro-*.json")} if out.is_dir() else set()


def write(out: Path) -> list[Path]:
    return write_files(out, render(), _generated(out))


def diff(out: Path) -> str:
    return diff_files(out, render(), _generated(out))


def main(argv: Sequence[str] | None = None) -> int:
    return run(
        argv,
        description="Write the Grafana dashboards as JSON.",
        default_out=Path("manifests/monitoring/dashboards"),
        write=write,
        diff=diff,
    )


if __name__ == "__main__":
    sys.exit(main())
