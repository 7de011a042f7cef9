"""The platform's dashboards: training (runs, trials, the queue) and the operator
(reconciles, work queues, API writes), from the metric names of
maestro.monitoring.metric_names. Pure."""

from __future__ import annotations

from maestro.monitoring import metric_names as n
from maestro.monitoring.grafana import Dashboard, Panel, Row, Variable, _t


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
