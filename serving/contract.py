"""The contract between the ModelDeployment operator and the model server it runs.

The environment the operator renders into every serving container and `maestro serve`
reads through `ServeSettings`, defined once and imported by both sides (as
`training/contract.py` is for trainers), so a renamed variable breaks a test, not a
rollout. The Prometheus metric names and labels the server exports live in
maestro.monitoring.metric_names, beside every other metric name the alerts query.

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
DRAIN_SECONDS = SERVE_PREFIX + "DRAIN_SECONDS"  # on SIGTERM, how long in-flight requests get
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
# The W3C trace context of the reconcile that created the pod's revision; the server's
# start-up span (loading the models) is its child. Requests keep their own incoming context.
TRACEPARENT = "TRACEPARENT"
OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"  # where spans go; unset: no spans are made
POD_NAME = "POD_NAME"  # from the downward API; names the pod's prediction log file

# --- metrics ------------------------------------------------------------------------------
# The metric names and labels the server exports are defined once, with the operator's and
# the recorded ones, in maestro.monitoring.metric_names (which the canary, shadow and
# ABTest analyses, prometheus-adapter's rules, the alert rules and dashboards import).
