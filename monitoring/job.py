"""`maestro drift run`: the program of a DriftCheck's Job (the operator renders its flags).

Reads the reference statistics (computed once, then cached next to the data), the
current data (the deployment's shipped prediction log over the window, or a URI), runs the
check, keeps the result as an MLflow run (metrics, the HTML report and result.json as
artifacts) and the report in the object store, and ends with the outcome in its
termination message (monitoring.contract.encode_message), which the operator reads into
the DriftCheck's status. Exit codes: monitoring.contract.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from maestro.monitoring import contract
from maestro.monitoring.contract import DriftFailure, DriftResult
from maestro.monitoring.errors import (
    CURRENT_UNREADABLE,
    EMPTY_DATA,
    DriftError,
    DriftInputError,
    DriftUnavailableError,
)
from maestro.monitoring.report import render_html

log = logging.getLogger("maestro.drift.run")
_DURATION = re.compile(r"^([0-9]+(s|m|h|d))+$")
_DURATION_PART = re.compile(r"([0-9]+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_METRIC_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")


@dataclass(frozen=True)
class RunArgs:
    driftcheck: str  # namespace/name
    reference: str
    predictions: str | None
    window: datetime.timedelta | None
    current: str | None
    columns: list[str] | None
    stat_test: str
    warning: float
    critical: float
    experiment: str | None
    reports: str | None


def parse_window(text: str) -> datetime.timedelta:
    """The CRD's Duration grammar (whole units, repeatable: 1h30m, 7d), as the operator
    reads it; argparse turns the error into exit 2."""
    if not _DURATION.fullmatch(text):
        raise argparse.ArgumentTypeError(f"--window {text!r}: use units such as 30m, 24h, 7d")
    seconds = sum(int(n) * _UNIT[u] for n, u in _DURATION_PART.findall(text))
    return datetime.timedelta(seconds=seconds)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "run",
        help="run one DriftCheck (the program of its Job; the operator sets the flags)",
        description=(
            "Check a ModelDeployment's served inputs against reference data, keep the result"
            " as an MLflow run and in the object store, and end with it in the termination"
            " message the operator reads. Exit 0 checked, 2 bad input (no retry), 3 a"
            " service unreachable (retried)."
        ),
    )
    p.add_argument("--driftcheck", required=True, help="namespace/name of the DriftCheck")
    p.add_argument("--reference", required=True, help="reference dataset URI")
    current = p.add_mutually_exclusive_group(required=True)
    current.add_argument(
        "--predictions", help="s3:// prefix of the deployment's shipped prediction log"
    )
    current.add_argument("--current", help="current dataset URI instead of the log")
    p.add_argument("--window", type=parse_window, help="prediction-log window, e.g. 24h")
    p.add_argument("--columns", help="comma-separated columns (default: all shared)")
    p.add_argument("--stat-test", default="auto", help="auto, ks, psi, chisquare, ...")
    p.add_argument("--warning", type=float, default=0.3, help="drift share for Warning")
    p.add_argument("--critical", type=float, default=0.5, help="drift share for Critical")
    p.add_argument("--experiment", help="MLflow experiment (MLFLOW_TRACKING_URI set)")
    p.add_argument("--reports", help="s3:// prefix for the HTML report")
    p.set_defaults(handler=main_from_args)


def main_from_args(ns: argparse.Namespace) -> int:
    # Plain lines in the pod's log (kubectl logs job/...): what was read and found.
    for name in ("maestro.drift.run", "maestro.monitoring"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s drift: %(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
    if ns.predictions and ns.window is None:
        print("maestro drift run: error: --predictions needs --window", file=sys.stderr)
        return contract.EXIT_BAD_INPUT
    args = RunArgs(
        driftcheck=ns.driftcheck,
        reference=ns.reference,
        predictions=ns.predictions,
        window=ns.window,
        current=ns.current,
        columns=[c.strip() for c in ns.columns.split(",") if c.strip()] if ns.columns else None,
        stat_test=ns.stat_test,
        warning=ns.warning,
        critical=ns.critical,
        experiment=ns.experiment,
        reports=ns.reports,
    )
    return run(args)


def run(args: RunArgs, now: datetime.datetime | None = None) -> int:
    now = now or datetime.datetime.now(datetime.UTC)
    try:
        result = check(args, now)
        result = keep(args, result, now)
    except DriftError as err:
        return finish(err.failure(), err.exit_code)
    except Exception as err:  # still tell the operator why, then fail (the Job retries)
        log.exception("the drift check failed")
        failure = DriftFailure(reason="CheckRunFailed", message=f"{type(err).__name__}: {err}")
        return finish(failure, 1)
    log.info(
        "drift share %.3f (%s): drifted %s",
        result.drift_share,
        result.severity.value,
        ", ".join(result.drifted_columns) or "none",
    )
    return finish(result, contract.EXIT_OK)


def current_frame(args: RunArgs, now: datetime.datetime) -> pd.DataFrame:
    from maestro.monitoring.datasets import load_frame

    if args.current:
        return load_frame(args.current, args.columns, side="current")
    from maestro.monitoring.predictions import load_window
    from maestro.storage.objectstore import ObjectNotFound, ObjectStoreUnavailable

    assert args.predictions and args.window
    try:
        frame, files = load_window(args.predictions, args.window, now)
    except ObjectStoreUnavailable as err:
        raise DriftUnavailableError(str(err)) from err
    except (ObjectNotFound, ValueError, OSError) as err:  # a missing bucket, a corrupt file
        raise DriftInputError(
            CURRENT_UNREADABLE, f"cannot read the prediction log under {args.predictions}: {err}"
        ) from err
    if frame.empty:
        raise DriftInputError(
            EMPTY_DATA,
            f"no predictions were logged in the {args.window} before {now:%Y-%m-%d %H:%M}Z"
            f" under {args.predictions} ({files} files): send traffic, widen"
            " spec.current.window, or check that the serving pods ship their log",
        )
    return frame


def check(args: RunArgs, now: datetime.datetime) -> DriftResult:
    from maestro.monitoring.cli import progress_for
    from maestro.monitoring.drift import check_with_reference_uri

    current = current_frame(args, now)
    return check_with_reference_uri(
        args.reference,
        current,
        columns=args.columns,
        stat_test=args.stat_test,
        warning=args.warning,
        critical=args.critical,
        progress=progress_for(sys.stderr),
    )


def keep(args: RunArgs, result: DriftResult, now: datetime.datetime) -> DriftResult:
    """The report in the object store and the MLflow run; the result names both."""
    from maestro.serving import contract as serving_contract

    pod = os.environ.get(serving_contract.POD_NAME) or f"run-{now:%Y%m%dT%H%M%S}"
    facts = {
        "DriftCheck": args.driftcheck,
        "reference": args.reference,
        "current": args.current or f"{args.predictions} (last {args.window})",
        "run": f"{pod} at {now.isoformat(timespec='seconds')}",
    }
    page = render_html(result, f"Drift check {args.driftcheck}", facts)
    report_uri = None
    if args.reports:
        from maestro.storage.objectstore import ObjectStore, ObjectStoreUnavailable

        report_uri = f"{args.reports.rstrip('/')}/{pod}/{contract.REPORT_FILE}"
        try:
            ObjectStore.from_env().put_bytes(report_uri, page.encode(), "text/html")
        except ObjectStoreUnavailable as err:
            raise DriftUnavailableError(str(err)) from err
    run_id = None
    if args.experiment and os.environ.get(serving_contract.TRACKING_URI):
        run_id = log_mlflow_run(args, result, page, pod)
        report_uri = report_uri or f"runs:/{run_id}/{contract.REPORT_FILE}"
    return result.model_copy(update={"report_uri": report_uri, "mlflow_run_id": run_id})


def metric_key(prefix: str, column: str) -> str:
    return f"{prefix}.{_METRIC_UNSAFE.sub('_', column)}"[:250]


def log_mlflow_run(args: RunArgs, result: DriftResult, page: str, pod: str) -> str:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        client = mlflow.MlflowClient()
        experiment = client.get_experiment_by_name(args.experiment or "")
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(args.experiment or "")
        )
        namespace, _, name = args.driftcheck.partition("/")
        run = client.create_run(
            experiment_id,
            run_name=pod,
            tags={
                "mlops.maestro.dev/driftcheck": args.driftcheck,
                "mlops.maestro.dev/namespace": namespace,
                "mlops.maestro.dev/name": name,
                "severity": result.severity.value,
            },
        )
        run_id: str = run.info.run_id
        client.log_param(run_id, "reference", args.reference[:500])
        client.log_param(run_id, "current", (args.current or f"{args.predictions}")[:500])
        client.log_param(run_id, "stat_test", args.stat_test)
        client.log_metric(run_id, "drift_share", result.drift_share)
        client.log_metric(run_id, "current_rows", result.current_rows)
        for col in result.columns:
            if col.score is not None:
                client.log_metric(run_id, metric_key("score", col.name), col.score)
            client.log_metric(run_id, metric_key("drifted", col.name), float(col.drifted))
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / contract.REPORT_FILE).write_text(page, encoding="utf-8")
            (Path(tmp) / contract.RESULT_FILE).write_text(
                result.model_dump_json(by_alias=True, indent=2), encoding="utf-8"
            )
            client.log_artifacts(run_id, tmp)
        client.set_terminated(run_id)
        return run_id
    except (MlflowException, OSError) as err:
        raise DriftUnavailableError(
            f"MLflow ({os.environ.get('MLFLOW_TRACKING_URI')}): {err}"
        ) from err


def finish(outcome: DriftResult | DriftFailure, code: int) -> int:
    """Write the termination message the operator reads; the exit code to end with."""
    from maestro.serving import contract as serving_contract

    path = Path(
        os.environ.get(serving_contract.TERMINATION_MESSAGE_PATH)
        or serving_contract.DEFAULT_TERMINATION_MESSAGE_PATH
    )
    message = contract.encode_message(outcome)
    if isinstance(outcome, DriftFailure):
        log.error("%s: %s", outcome.reason, outcome.message)
    try:
        path.write_text(message, encoding="utf-8")
    except OSError as err:  # outside a pod (no /dev/termination-log): the log says it
        log.debug("no termination message written to %s: %s", path, err)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="maestro drift")
    add_parser(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args(argv)
    return int(ns.handler(ns))
