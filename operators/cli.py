"""The `maestro` command.

Subcommands import their implementation only when chosen, so a slim image (e.g. serving)
can run `maestro <its subcommand>` without kopf or the kubernetes client installed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _operator(args: argparse.Namespace) -> int:
    from maestro.operators.runtime import run
    from maestro.operators.settings import OperatorConfig

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


TRAIN_EPILOG = """\
environment (set by the TrainingRun operator; see maestro.training.contract):
  MLFLOW_TRACKING_URI            MLflow server, e.g. http://mlflow:5000
  MLFLOW_EXPERIMENT_NAME         experiment for a standalone run (default: Default)
  MAESTRO_MLFLOW_PARENT_RUN_ID   the operator's run: trained into, or parent of the trials
  MAESTRO_TRAININGRUN            <namespace>/<name>, tagged on every run
  MAESTRO_TRAININGRUN_UID        the TrainingRun's uid, tagged on every run
  MAESTRO_FRAMEWORK              SKLearn | XGBoost | Generic (= SKLearn)
  MAESTRO_PARAMS                 JSON params: model (random_forest, gradient_boosting,
                                 logistic_regression, ridge, sgd, xgboost), target,
                                 test_size, task, epochs, steps, seed; the rest are the
                                 estimator's hyperparameters
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
tuning (an Optuna worker; run several against one study for parallel trials):
  MAESTRO_TUNING                 JSON of spec.tuning (camelCase, as in the CRD)
  MAESTRO_OPTUNA_STORAGE         study storage, e.g. postgresql://user:pw@host/optuna
  MAESTRO_OPTUNA_STUDY           study name (created by the operator, or here if missing)
  JOB_COMPLETION_INDEX           worker index, added to the sampler's seed
  HOSTNAME                       the pod's name, recorded on each trial it runs

exit status: 0 done, 1 training failed, 2 bad input (dataset, params, search space)
"""


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
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.handler(args))


if __name__ == "__main__":
    main()
