"""The `maestro` subcommands' --help epilogs: environment, endpoints, exit status."""

SERVE_EPILOG = """\
model URIs (MLflow): models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME/latest,
  runs:/RUN_ID/PATH, s3://BUCKET/PATH, file:///PATH; models:/ URIs are pinned to the
  concrete registry version at load, reported in metrics and GET /v2/models/NAME.

endpoints:
  POST /v2/models/NAME/infer     Open Inference Protocol v2 ({"id", "inputs": [{name, shape,
                                 datatype, data}]}; one tensor, or one input per column)
  POST /invocations              MLflow scoring: dataframe_split | dataframe_records |
                                 instances | inputs (JSON), or text/csv
  POST /predict                  {"instances": [...]}
  POST /feedback                 {"request_id": ..., "outcome": ...} (a response's x-request-id)
  GET  /v2/health/live, /v2/health/ready, /v2, /v2/models/NAME[/ready], /metrics
  /invocations and /predict serve the main model (the ensemble when --ensemble is given).

environment (flags override; set by the ModelDeployment operator):
  MLFLOW_TRACKING_URI              MLflow server the models:/ and runs:/ URIs resolve against
  MAESTRO_DEPLOYMENT               ModelDeployment name (metrics label deployment)
  MAESTRO_REVISION                 revision name, e.g. v3 (metrics label revision)
  MAESTRO_MODEL_VERSION            registry version, used when the URI has none (runs:/)
  MAESTRO_BIND_HOST                default --host (the local pod runner sets the pod IP)
  MAESTRO_SERVE_MODEL_URI          --model-uri
  MAESTRO_SERVE_MODEL_NAME         --model-name
  MAESTRO_SERVE_MODELS             further models as JSON {"name": "uri"} (--model)
  MAESTRO_SERVE_ENSEMBLE           --ensemble (mean | vote)
  MAESTRO_SERVE_SHADOW_MODEL_URI   --shadow-model-uri
  MAESTRO_SERVE_HOST, MAESTRO_SERVE_PORT                      --host, --port (8080)
  MAESTRO_SERVE_GRPC_PORT          --grpc-port: the v2 protocol over gRPC (8081; 0: off)
  MAESTRO_SERVE_MAX_BATCH_SIZE, MAESTRO_SERVE_MAX_BATCH_WAIT_MS  batching (64, 1.0 ms)
  MAESTRO_SERVE_MAX_QUEUE          queued requests per model before 503 (1024)
  MAESTRO_SERVE_MAX_BODY_BYTES     larger bodies get 413 (16 MiB)
  MAESTRO_SERVE_DRAIN_SECONDS      SIGTERM: time for in-flight requests (30)
  MAESTRO_SERVE_PREDICTION_LOG     JSON-lines file of sampled predictions and feedback
  MAESTRO_SERVE_PREDICTION_LOG_SAMPLE  fraction of predictions logged, 0-1 (1.0)
  MAESTRO_SERVE_PREDICTION_LOG_URI s3:// prefix the log is also shipped to as Parquet
                                   (object store from AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, ...)
  MAESTRO_SERVE_PREDICTION_LOG_FLUSH_SECONDS  longest a logged row waits to be shipped (30)
  MAESTRO_SERVE_AUTH_TOKEN_FILE    --auth-token-file: callers send it as a bearer token
  MAESTRO_SERVE_AUTH_JWKS_URL      --auth-jwks-url (and _AUTH_JWT_AUDIENCE, _AUTH_JWT_ISSUER)
                                   without credentials 401, wrong ones 403; /metrics and the
                                   health paths stay open
  MAESTRO_SERVE_SECRET_FILES       --secret-file ENV=PATH (repeatable; JSON {"ENV": "PATH"}):
                                   the file's value (a Vault Agent's /vault/secrets/...) set
                                   as $ENV before the model loads, and again whenever the
                                   file changes (checked every
                                   MAESTRO_SERVE_SECRET_REFRESH_SECONDS, 2)
  OTEL_EXPORTER_OTLP_ENDPOINT      export a span per request and per batch, and one for
                                   loading the models, over OTLP/HTTP
                                   (OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER etc.
                                   are honoured)
  TRACEPARENT                      W3C trace context the model-load span continues (the
                                   operator sets it: the reconcile that made the revision)

metrics (labels deployment, revision, model, model_version): maestro_requests_total (+ code,
  protocol), maestro_request_duration_seconds, maestro_batch_size, maestro_model_info,
  maestro_model_load_seconds, maestro_shadow_requests_total, maestro_shadow_agreements_total,
  maestro_shadow_latency_delta_seconds, maestro_feedback_total, maestro_feedback_outcome,
  maestro_secret_reloads_total (+ env).

exit status: 0 after a drain (SIGTERM), 1 a model failed to load or a secret file is
  missing or empty, 2 bad settings
"""

PREDICT_BATCH_EPILOG = """\
The model is loaded as `maestro serve` loads it and called on each chunk; rows are checked
against its signature (a bad value names its column and rows). The output is the input with
the prediction column(s) appended: PREFIX for one label/score per row, PREFIX_0.. for several
(probabilities), the output's own names for models answering a DataFrame.

environment:
  MLFLOW_TRACKING_URI   MLflow server the models:/ and runs:/ URIs resolve against

exit status: 0 done (a JSON summary on stdout), 1 prediction failed, 2 bad input
"""

TRAIN_EPILOG = """\
environment (set by the TrainingRun operator; see maestro.training.contract):
  MLFLOW_TRACKING_URI            MLflow server, e.g. http://mlflow:5000
  MLFLOW_EXPERIMENT_NAME         experiment for a standalone run (default: Default)
  MAESTRO_MLFLOW_PARENT_RUN_ID   the operator's run: trained into, or parent of the trials
  MAESTRO_TRAININGRUN            <namespace>/<name>, tagged on every run
  MAESTRO_TRAININGRUN_UID        the TrainingRun's uid, tagged on every run
  MAESTRO_FRAMEWORK              SKLearn | XGBoost | PyTorch | Generic (= SKLearn)
  MAESTRO_PARAMS                 JSON params: model (random_forest, gradient_boosting,
                                 logistic_regression, ridge, sgd, xgboost), target,
                                 test_size, task, epochs, steps, seed; the rest are the
                                 estimator's hyperparameters; PyTorch (an MLP): hidden_sizes
                                 ("64,32"), lr, epochs, batch_size (per replica),
                                 weight_decay, target, test_size, task, seed
  MAESTRO_DATASET_URI            sklearn://iris, file:///data/x.parquet, x.csv, s3://b/k.parquet
  MAESTRO_DATASET_VERSION        dataset version, recorded as lineage
  MAESTRO_FEATURE_SERVICE        Feast feature service to join onto the dataset's entities
                                 (the dataset is then the entity frame: keys, event_timestamp,
                                 target)
  MAESTRO_FEAST_REPO             Feast repo folder with feature_store.yaml (default: packaged)
  MAESTRO_FEAST_REGISTRY         Feast registry file, overriding feature_store.yaml's
  MAESTRO_FEAST_REDIS            Redis online store, host:port[,db=N] (default 127.0.0.1:6379)
  MAESTRO_FEAST_PROJECT          Feast project, overriding feature_store.yaml's (maestro)
  MAESTRO_SEED                   seed of the split, the estimator and the sampler
PyTorch data-parallel training (DDP, gloo on CPU; Kubeflow's PyTorchJob sets these, the
Master is rank 0 and alone logs to MLflow; unset or WORLD_SIZE=1: one process):
  WORLD_SIZE                     number of replicas
  RANK                           this replica, 0..WORLD_SIZE-1
  MASTER_ADDR, MASTER_PORT       where rank 0 waits for the others
tuning (an Optuna worker; run several against one study for parallel trials; not PyTorch):
  MAESTRO_TUNING                 JSON of spec.tuning (camelCase, as in the CRD)
  MAESTRO_OPTUNA_STORAGE         study storage, e.g. postgresql://user:pw@host/optuna
  MAESTRO_OPTUNA_STUDY           study name (created by the operator, or here if missing)
  JOB_COMPLETION_INDEX           worker index, added to the sampler's seed
  MAESTRO_OPTUNA_HEARTBEAT_SECONDS
                                 running trials' heartbeat (default 10); a trial silent
                                 for twice that (its pod died) is failed by another worker
  HOSTNAME                       the pod's name, recorded on each trial it runs

exit status: 0 done, 1 training failed, 2 bad input (dataset, params, search space)
"""

ABTEST_ANALYZE_EPILOG = """\
input (JSON; figures are cumulative at each look, as the ABTest's status recorded them):
  {"tests": [{"metricType": "Proportion" | "Continuous",    (default Proportion)
              "alpha": 0.05, "power": 0.8,                   (defaults as in the ABTest spec)
              "minimumDetectableEffect": 0.02,               absolute, in the metric's units
              "higherIsBetter": true, "sequential": true,
              "looks": [{"champion": {"n": 1000, "sum": 100},
                         "challenger": {"n": 1000, "sum": 131}}, ...]}]}
  n: outcomes; sum: their sum (successes for a Proportion); sumSquares: the sum of their
  squares, required for Continuous only.

output (stdout), one entry per look:
  {"tests": [{"looks": [{"lift", "pValue", "interval": {"lower", "upper", "level"},
                         "requiredSamples", "decision"}]}]}
  lift is challenger minus champion; decision is PromoteChallenger, KeepChampion or
  Continue; null where a look has too few outcomes to say.

statistics (the operator's own functions):
  Proportion   two-proportion z-test (pooled variance), Wald interval (unpooled)
  Continuous   Welch's t-test and its interval
  sequential   mixture SPRT (normal mixture, scale = minimumDetectableEffect): valid however
               often it is checked; pValue is the running minimum over looks, the interval
               an always-valid confidence sequence
  fixed        (sequential: false) decides only once both models reach requiredSamples:
               per model, two-sided, at alpha and power, the champion's rate (Proportion)
               or variance (Continuous) as the baseline

exit status: 0 done, 2 bad input (each error names its field, e.g. tests[0].looks[1].champion.n)
"""
