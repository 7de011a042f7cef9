"""The contract between the ModelDeployment operator and the model server it runs.

Two halves, each defined once and imported by both sides (as `training/contract.py` is
for trainers), so a renamed variable or metric breaks a test, not a rollout:

- the environment the operator renders into every serving container and `maestro serve`
  reads through `ServeSettings`;
- the Prometheus metric names and labels the server exports, which the canary and shadow
  analysis and the alert rules query.

Pure: no I/O, no third-party imports.
"""

from __future__ import annotations

# --- environment --------------------------------------------------------------------------
# Knobs of the server itself: `ServeSettings` reads every field as SERVE_PREFIX + its name.
SERVE_PREFIX = "MAESTRO_SERVE_"
MODEL_URI = SERVE_PREFIX + "MODEL_URI"
MODEL_NAME = SERVE_PREFIX + "MODEL_NAME"
PORT = SERVE_PREFIX + "PORT"
GRPC_PORT = SERVE_PREFIX + "GRPC_PORT"  # the Open Inference Protocol over gRPC; 0: off
PREDICTION_LOG = SERVE_PREFIX + "PREDICTION_LOG"
PREDICTION_LOG_SAMPLE = SERVE_PREFIX + "PREDICTION_LOG_SAMPLE"
# Object-store prefix the pods ship the log to (predlog_layout.deployment_root).
PREDICTION_LOG_URI = SERVE_PREFIX + "PREDICTION_LOG_URI"
PREDICTION_LOG_FLUSH_SECONDS = SERVE_PREFIX + "PREDICTION_LOG_FLUSH_SECONDS"
# Secrets as files (the Vault Agent's /vault/secrets/<ENV>), JSON {"ENV": "/path"}; the
# operator passes them as `--secret-file ENV=PATH` flags instead.
SECRET_FILES = SERVE_PREFIX + "SECRET_FILES"
# An ABTest on the deployment (ServeSettings abtest_*): its name, the key that signs its
# request ids, which variant this pod serves, the challenger's percent of traffic, the
# Sticky split's header and, on the champion's pods, the challenger's Service URL.
ABTEST = SERVE_PREFIX + "ABTEST"
ABTEST_KEY = SERVE_PREFIX + "ABTEST_KEY"
ABTEST_VARIANT = SERVE_PREFIX + "ABTEST_VARIANT"
ABTEST_CHALLENGER_PERCENT = SERVE_PREFIX + "ABTEST_CHALLENGER_PERCENT"
ABTEST_SPLIT_HEADER = SERVE_PREFIX + "ABTEST_SPLIT_HEADER"
ABTEST_PEER_URL = SERVE_PREFIX + "ABTEST_PEER_URL"
# Identity, set by the operator (no prefix: other programs of the pod read them too).
TRACKING_URI = "MLFLOW_TRACKING_URI"
DEPLOYMENT = "MAESTRO_DEPLOYMENT"  # the ModelDeployment's name
REVISION = "MAESTRO_REVISION"  # v<version>, or a hash of the model URI
MODEL_VERSION = "MAESTRO_MODEL_VERSION"  # the registry version, "" outside the registry
BIND_HOST = "MAESTRO_BIND_HOST"  # the local platform gives each pod its own address
# Where the server writes why it stopped (a model it cannot load): the kubelet mounts a
# file at the container's terminationMessagePath and shows it in the pod's status. The
# local platform, which cannot mount, gives each container a file and names it here.
TERMINATION_MESSAGE_PATH = "MAESTRO_TERMINATION_MESSAGE_PATH"
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
POD_NAME = "POD_NAME"  # from the downward API; names the pod's prediction log file

# --- metrics ------------------------------------------------------------------------------
# Every serving metric carries these labels (Prometheus adds namespace and pod).
LABELS = ("deployment", "revision", "model", "model_version")
# Families as registered (prometheus_client appends _total to counters on export).
REQUESTS = "maestro_requests"
REQUEST_DURATION = "maestro_request_duration_seconds"
BATCH_SIZE = "maestro_batch_size"
MODEL_INFO = "maestro_model_info"
MODEL_LOAD_SECONDS = "maestro_model_load_seconds"
SHADOW_REQUESTS = "maestro_shadow_requests"
SHADOW_AGREEMENTS = "maestro_shadow_agreements"
SHADOW_LATENCY_DELTA = "maestro_shadow_latency_delta_seconds"
FEEDBACK = "maestro_feedback"
FEEDBACK_OUTCOME = "maestro_feedback_outcome"
# Labelled deployment, revision and env (the variable a secret file feeds), not by model.
SECRET_RELOADS = "maestro_secret_reloads"
LABEL_ENV = "env"
# ABTest families, labelled deployment, abtest and variant (champion | challenger): the
# operator sums them over every pod of the test.
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
# The per-pod request rate the HPA scales on, served by a custom-metrics adapter.
REQUESTS_PER_SECOND = "maestro_requests_per_second"


def counter(family: str) -> str:
    """The series name of a counter family as Prometheus stores it."""
    return f"{family}_total"


def buckets(family: str) -> str:
    """The bucket series of a histogram family."""
    return f"{family}_bucket"
