"""The `maestro` command.

Subcommands import their implementation only when chosen, so a slim image (e.g. serving)
can run `maestro <its subcommand>` without kopf or the kubernetes client installed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from maestro.operators.cli_help import (
    ABTEST_ANALYZE_EPILOG,
    PREDICT_BATCH_EPILOG,
    SERVE_EPILOG,
    TRAIN_EPILOG,
)


def _operator(args: argparse.Namespace) -> int:
    from maestro.operators.core.settings import OperatorConfig
    from maestro.operators.runtime import run

    # Only flags the user gave override MAESTRO_* environment variables.
    overrides = {
        key: value
        for key, value in {
            "namespaces": args.namespace or None,
            "peering": args.peering,
            "standalone": args.standalone or None,
            "priority": args.priority,
            "liveness": args.liveness,
            "verbose": args.verbose or None,
            "log_format": args.log_format,
        }.items()
        if value is not None
    }
    run(OperatorConfig(**overrides))
    return 0


def _crds(args: argparse.Namespace) -> int:
    from maestro.operators.api import crdgen

    return crdgen.run(args)


def _train(args: argparse.Namespace) -> int:
    import os

    from maestro.training.run import main

    return main(os.environ)


def _serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from maestro.serving.server import run
    from maestro.serving.settings import ServeSettings

    models: dict[str, str] = {}
    for item in args.model or ():
        name, sep, uri = item.partition("=")
        if not sep or not name or not uri:
            print(f"error: --model {item!r}: expected NAME=URI", file=sys.stderr)
            return 2
        models[name] = uri
    # Only flags the user gave override MAESTRO_SERVE_* environment variables.
    flags = {
        "model_uri": args.model_uri,
        "model_name": args.model_name,
        "models": models or None,
        "ensemble": args.ensemble,
        "ensemble_name": args.ensemble_name,
        "shadow_model_uri": args.shadow_model_uri,
        "host": args.host,
        "port": args.port,
        "grpc_port": args.grpc_port,
        "max_batch_size": args.max_batch_size,
        "max_batch_wait_ms": args.max_batch_wait_ms,
        "max_queue": args.max_queue,
        "max_body_bytes": args.max_body_bytes,
        "prediction_log": args.prediction_log,
        "prediction_log_sample": args.prediction_log_sample,
        "drain_seconds": args.drain_seconds,
        "auth_token_file": args.auth_token_file,
        "auth_jwks_url": args.auth_jwks_url,
        "auth_jwt_audience": args.auth_audience,
        "auth_jwt_issuer": args.auth_issuer,
        "secret_files": args.secret_file,  # ENV=PATH specs, checked by ServeSettings
    }
    try:
        settings = ServeSettings(**{k: v for k, v in flags.items() if v is not None})
        settings.named_uris()
    except (ValidationError, ValueError) as err:
        print(f"error: invalid settings: {err}", file=sys.stderr)
        return 2
    return run(settings)


def _predict_batch(args: argparse.Namespace) -> int:
    import os

    from maestro.serving.batch import run

    return run(
        args.model_uri,
        args.input,
        args.output,
        chunk_size=args.chunk_size,
        prefix=args.prediction_column,
        tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", ""),
    )


def _abtest_analyze(args: argparse.Namespace) -> int:
    from maestro.operators.abtest.analyze import run

    return run(args.input)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maestro",
        description="Maestro ML: Kubernetes-native MLOps platform.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    op = commands.add_parser(
        "operator",
        help="run the Kopf operator for TrainingRun, ModelDeployment, ABTest and DriftCheck",
        description=(
            "Run the Maestro operator. It watches all namespaces unless --namespace is given,"
            " and elects one active replica through the ClusterKopfPeering named by --peering."
            " Every option can also be set as a MAESTRO_* environment variable"
            " (e.g. MAESTRO_PEERING, MAESTRO_NAMESPACES='[\"ml\"]')."
        ),
    )
    op.add_argument(
        "-n",
        "--namespace",
        action="append",
        metavar="NAME",
        help="serve only this namespace (repeatable); default: all namespaces",
    )
    peering = op.add_mutually_exclusive_group()
    peering.add_argument(
        "--peering",
        metavar="NAME",
        help="ClusterKopfPeering object used to elect the active replica (default: maestro)",
    )
    op.add_argument(
        "--priority",
        type=int,
        metavar="N",
        help="peering priority of this replica, highest wins (default: random, so replicas differ)",
    )
    peering.add_argument(
        "--standalone",
        action="store_true",
        help="run without peering: a single replica, development or tests",
    )
    op.add_argument(
        "--liveness",
        metavar="URL",
        help="liveness endpoint, '' to disable (default: http://0.0.0.0:8080/healthz)",
    )
    op.add_argument(
        "--log-format",
        choices=["plain", "full", "json"],
        help="log line format (default: plain)",
    )
    op.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    op.set_defaults(handler=_operator)

    crds = commands.add_parser(
        "crds",
        help="generate the CRD manifests from the typed models",
        description="Write the Maestro and Kopf CRDs and their kustomization.yaml.",
    )
    crds.add_argument(
        "--out",
        type=Path,
        default=Path("manifests/crds"),
        help="output folder (default: manifests/crds)",
    )
    crds.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a diff when the folder is out of date",
    )
    crds.set_defaults(handler=_crds)

    train = commands.add_parser(
        "train",
        help="train a model (or run an Optuna tuning worker) as a TrainingRun pod does",
        description=(
            "Train the model a TrainingRun describes and log it to MLflow: params, metrics per"
            " step, final metrics, the model with its signature, lineage tags. With"
            " MAESTRO_TUNING set, run an Optuna worker instead: trials (each a nested MLflow"
            " run) until the shared study holds tuning.trials trials. All settings come from"
            " the environment below."
        ),
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.set_defaults(handler=_train)

    serve = commands.add_parser(
        "serve",
        help="serve MLflow models over HTTP and gRPC (Open Inference Protocol v2, MLflow scoring)",
        description=(
            "Serve one or more MLflow models as a ModelDeployment pod does: adaptive"
            " micro-batching on one inference thread per model, input checked against the"
            " model signature, Prometheus metrics, OpenTelemetry traces, a sampled prediction"
            " log, readiness after load and warm-up, and a graceful drain on SIGTERM."
        ),
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--model-uri", metavar="URI", help="the main model's MLflow URI")
    serve.add_argument(
        "--model-name",
        metavar="NAME",
        help="name of the main model (default: registered model name, else 'model')",
    )
    serve.add_argument(
        "--model",
        action="append",
        metavar="NAME=URI",
        help="a further model served as NAME (repeatable)",
    )
    serve.add_argument(
        "--ensemble",
        choices=["mean", "vote"],
        help="also serve all models as one: mean of their outputs, or majority vote",
    )
    serve.add_argument(
        "--ensemble-name", metavar="NAME", help="name of the ensemble (default: ensemble)"
    )
    serve.add_argument(
        "--shadow-model-uri",
        metavar="URI",
        help="mirror each request of the main model to this model after answering; count"
        " agreement and latency delta, never return its answer",
    )
    serve.add_argument("--host", help="address to bind (default: MAESTRO_BIND_HOST or 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port (default: 8080)")
    serve.add_argument(
        "--grpc-port",
        type=int,
        metavar="PORT",
        help="port of the Open Inference Protocol's gRPC service, GRPCInferenceService"
        " (default: 8081; 0 turns gRPC off)",
    )
    serve.add_argument(
        "--max-batch-size", type=int, metavar="N", help="requests per predict (default: 64)"
    )
    serve.add_argument(
        "--max-batch-wait-ms",
        type=float,
        metavar="MS",
        help="wait for a batch to fill under concurrency (default: 1.0)",
    )
    serve.add_argument(
        "--max-queue", type=int, metavar="N", help="queued requests before 503 (default: 1024)"
    )
    serve.add_argument(
        "--max-body-bytes", type=int, metavar="N", help="413 above this (default: 16 MiB)"
    )
    serve.add_argument(
        "--prediction-log", type=Path, metavar="PATH", help="JSON-lines prediction log"
    )
    serve.add_argument(
        "--prediction-log-sample",
        type=float,
        metavar="RATE",
        help="fraction of predictions logged, 0-1 (default: 1.0)",
    )
    serve.add_argument(
        "--drain-seconds",
        type=float,
        metavar="S",
        help="on SIGTERM, time for in-flight requests to finish (default: 30)",
    )
    serve.add_argument(
        "--auth-token-file",
        type=Path,
        metavar="PATH",
        help="require 'Authorization: Bearer <the token in this file>' (re-read on change)",
    )
    serve.add_argument(
        "--auth-jwks-url", metavar="URL", help="also accept JWTs signed by a key of this JWKS"
    )
    serve.add_argument("--auth-audience", metavar="AUD", help="the JWTs' required audience")
    serve.add_argument("--auth-issuer", metavar="ISS", help="the JWTs' required issuer")
    serve.add_argument(
        "--secret-file",
        action="append",
        metavar="ENV=PATH",
        help="set ENV to the content of the file PATH (e.g. /vault/secrets/ENV) before the"
        " models load, and again whenever it changes (repeatable)",
    )
    serve.set_defaults(handler=_serve)

    batch = commands.add_parser(
        "predict-batch",
        help="predict a parquet or CSV file with an MLflow model, in chunks",
        description="Batch inference: the serving model loader over a file, chunk by chunk,"
        " with a progress bar on stderr; writes parquet.",
        epilog=PREDICT_BATCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    batch.add_argument("--model-uri", required=True, metavar="URI", help="MLflow model URI")
    batch.add_argument(
        "--input", required=True, type=Path, metavar="PATH", help="input .parquet or .csv"
    )
    batch.add_argument("--output", required=True, type=Path, metavar="PATH", help="output .parquet")
    batch.add_argument(
        "--chunk-size", type=int, default=10_000, metavar="N", help="rows per chunk (10000)"
    )
    batch.add_argument(
        "--prediction-column",
        default="prediction",
        metavar="NAME",
        help="name (prefix) of the appended column(s) (default: prediction)",
    )
    batch.set_defaults(handler=_predict_batch)

    abtest = commands.add_parser(
        "abtest",
        help="ABTest statistics offline",
        description="Work with ABTest figures outside the cluster.",
    )
    abtest_commands = abtest.add_subparsers(
        dest="abtest_command", required=True, metavar="SUBCOMMAND"
    )
    analyze = abtest_commands.add_parser(
        "analyze",
        help="re-run ABTest decisions from stored sufficient statistics (JSON)",
        description=(
            "Compute each look's lift, p-value, interval, required samples and decision from"
            " the cumulative figures of both models, with the functions the operator uses."
        ),
        epilog=ABTEST_ANALYZE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    analyze.add_argument(
        "--input", required=True, metavar="FILE", help="the figures (JSON); - reads stdin"
    )
    analyze.set_defaults(handler=_abtest_analyze)

    from maestro.governance.cli import add_commands

    add_commands(commands)

    from maestro.monitoring import job as drift_job
    from maestro.monitoring.cli import add_commands as add_drift_commands

    drift_job.add_parser(add_drift_commands(commands))

    from maestro.monitoring.sla_cli import add_commands as add_sla_commands

    add_sla_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.handler(args))


if __name__ == "__main__":
    main()
