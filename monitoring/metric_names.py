"""Every Prometheus metric name Maestro exports or records, defined once.

The programs that export them (`maestro serve`, the operator), the queries that read them
(the canary, shadow and ABTest analyses, prometheus-adapter's rules) and the alert rules,
recording rules and dashboards of `maestro.monitoring` all import the names from here, so
a renamed metric breaks a test instead of an alert that silently never fires.

Families are named as registered with prometheus_client: counters get `_total` on export
(`counter()`), histograms `_bucket`/`_sum`/`_count` (`buckets()`, `count()`).

Pure and a leaf: no imports of Maestro or third-party packages (an import-linter contract
keeps it so), since serving, the operator and monitoring all import it.
"""

from __future__ import annotations

# --- the model server (`maestro serve`, maestro.serving.metrics) -------------------------
# Every serving metric carries these labels (Prometheus adds namespace and pod).
LABELS = ("deployment", "revision", "model", "model_version")
REQUESTS = "maestro_requests"  # counter, labels LABELS + code + protocol
REQUEST_DURATION = "maestro_request_duration_seconds"  # histogram
# Its bucket bounds (seconds), from 0.5 ms (a small sklearn model answers in about 1 ms) to
# 10 s: a latency SLO's threshold is one of them (the SLI counts requests under a bound).
REQUEST_DURATION_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_SIZE = "maestro_batch_size"  # histogram
MODEL_INFO = "maestro_model_info"  # gauge, 1 per loaded model
MODEL_LOAD_SECONDS = "maestro_model_load_seconds"  # gauge
# Requests waiting for the model's inference thread, and how many may wait before the
# server answers 503 (the bounded queue of maestro.serving.batching).
QUEUE_DEPTH = "maestro_queue_depth"  # gauge
QUEUE_CAPACITY = "maestro_queue_capacity"  # gauge
SHADOW_REQUESTS = "maestro_shadow_requests"  # counter
SHADOW_AGREEMENTS = "maestro_shadow_agreements"  # counter
SHADOW_LATENCY_DELTA = "maestro_shadow_latency_delta_seconds"  # histogram
FEEDBACK = "maestro_feedback"  # counter
FEEDBACK_OUTCOME = "maestro_feedback_outcome"  # summary
# Labelled deployment, revision and env (the variable a secret file feeds), not by model.
SECRET_RELOADS = "maestro_secret_reloads"
LABEL_ENV = "env"
# ABTest families, labelled deployment, abtest, test_id and variant (champion |
# challenger): the operator sums them over every pod of the test.
ABTEST_ASSIGNMENTS = "maestro_abtest_assignments"  # counter
ABTEST_EXPECTED = "maestro_abtest_expected_assignments"  # counter: sum of probabilities
ABTEST_OUTCOMES = "maestro_abtest_outcomes"  # counter: n
ABTEST_OUTCOME_SUM = "maestro_abtest_outcome_sum"  # gauge
ABTEST_OUTCOME_SQUARES = "maestro_abtest_outcome_sum_squares"  # gauge
ABTEST_UNMATCHED = "maestro_abtest_unmatched_feedback"  # counter, labelled reason
# Extra labels of REQUESTS. `code` is the HTTP status; a gRPC request (protocol "grpc") is
# counted with the HTTP status its outcome has over HTTP (OK 200, INVALID_ARGUMENT 400 or
# 422, NOT_FOUND 404, RESOURCE_EXHAUSTED/UNAVAILABLE 503, INTERNAL 500), so the error-rate
# alerts and the canary analysis count both protocols alike.
LABEL_CODE = "code"
LABEL_PROTOCOL = "protocol"
# The per-pod request rate the HPA scales on, served by prometheus-adapter (not a series).
REQUESTS_PER_SECOND = "maestro_requests_per_second"

# --- the operator about itself (operators.core.operator_metrics) -------------------------
OPERATOR_RECONCILE_SECONDS = "maestro_operator_reconcile_duration_seconds"  # histogram, kind
OPERATOR_RECONCILE_ERRORS = "maestro_operator_reconcile_errors"  # counter, kind
OPERATOR_WORKQUEUE_DEPTH = "maestro_operator_workqueue_depth"  # gauge, kind
OPERATOR_API_WRITES = "maestro_operator_api_writes"  # counter, kind + verb

# --- the operator about the objects it reconciles (set from their status) ----------------
# DriftCheck, labelled namespace, driftcheck, deployment (columns add column and test).
DRIFT_SHARE = "maestro_driftcheck_drift_share"
DRIFT_SEVERITY = "maestro_driftcheck_severity"  # 0 Ok, 1 Warning, 2 Critical
DRIFT_COLUMN_SCORE = "maestro_driftcheck_column_score"
DRIFT_COLUMN_DRIFTED = "maestro_driftcheck_column_drifted"
# When the last run ended (else when the check was created), and the longest gap its
# schedule leaves between two runs: `time() - last > 2 * interval` is a missed schedule.
DRIFT_LAST_RUN = "maestro_driftcheck_last_run_timestamp_seconds"
DRIFT_LAST_RUN_FAILED = "maestro_driftcheck_last_run_failed"  # 1: it could not check
DRIFT_SCHEDULE_INTERVAL = "maestro_driftcheck_schedule_interval_seconds"
# TrainingRun, labelled namespace and trainingrun: 1 for the current phase, 0 for the
# others (as kube-state-metrics does for pods); trial counts labelled state.
TRAINING_PHASE = "maestro_trainingrun_phase"
TRAINING_TRIALS = "maestro_trainingrun_trials"
# ABTest, labelled namespace, abtest and deployment: 1 for the current phase and Ready
# reason (GuardrailBreached, SampleRatioMismatch, ...); the SRM p-value of the split.
ABTEST_STATUS = "maestro_abtest_status"
ABTEST_SRM_P_VALUE = "maestro_abtest_srm_p_value"

# --- recorded by the SLO rules (maestro.monitoring.slo) ----------------------------------
# Prometheus' naming convention level:metric:operations, labelled namespace and deployment;
# the window ends the name (slo_series(SLO_AVAILABILITY_ERROR_RATIO, "1h")).
SLO_AVAILABILITY_ERROR_RATIO = "deployment:maestro_slo_availability_errors:ratio_rate"
SLO_LATENCY_ERROR_RATIO = "deployment:maestro_slo_latency_errors:ratio_rate"
SLO_REQUESTS = "deployment:maestro_requests:increase"


def slo_series(prefix: str, window: str) -> str:
    """The recorded series of one SLO figure over one window, e.g. ...:ratio_rate1h."""
    return f"{prefix}{window}"


def counter(family: str) -> str:
    """The series name of a counter family as Prometheus stores it."""
    return f"{family}_total"


def buckets(family: str) -> str:
    """The bucket series of a histogram family."""
    return f"{family}_bucket"


def count(family: str) -> str:
    """The observation count series of a histogram or summary family."""
    return f"{family}_count"
