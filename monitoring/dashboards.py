"""Grafana dashboards as code, pure: inference and model quality (A/B tests, drift,
shadow) here, training and the operator in platform_dashboards, written in the typed model
of `grafana`, built from the metric names of maestro.monitoring.metric_names
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
from pathlib import Path

from maestro.monitoring import metric_names as n
from maestro.monitoring.grafana import (
    WIDTH,
    Dashboard,
    Panel,
    Row,
    Target,
    Variable,
    _t,
    to_json,
)
from maestro.monitoring.platform_dashboards import operator, training
from maestro.operators.api.generated_files import diff_files, run, write_files

__all__ = ["WIDTH", "Dashboard", "Panel", "Row", "Target", "Variable", "dashboards", "to_json"]

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


def dashboards() -> list[Dashboard]:
    return [inference(), model_quality(), training(), operator()]


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
