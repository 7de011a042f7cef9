"""`maestro lineage NAME --version V`: where one registered model version came from and
where it runs now.

`gather` is the only I/O: the MLflow registry and runs through the client it is given,
the ModelDeployments through `deployments_source` (`lineage_cluster`). What it finds is a
frozen `Lineage` (`lineage_model`); the renderers (`lineage_render`) are pure. The facts
live in:

- the model version (source, run, aliases, tags);
- its training run: params, MLflow's code tags, and the lineage tags and dataset input the
  trainer writes (training/contract.py). A tuning trial's run may carry only some of them,
  its parent (the study's run) the rest, so the parent fills what the run lacks;
- the status of every ModelDeployment (stable, canary and previous model URIs, aliases
  already resolved by the operator).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO
from urllib.parse import urlsplit

from maestro.governance.lineage_cluster import (
    DeploymentsSource,
    DeploymentsUnavailable,
    list_modeldeployments,
    serving_revisions,
)
from maestro.governance.lineage_model import (
    CodeVersion,
    Dataset,
    Deployments,
    Lineage,
    ModelVersion,
    Training,
)
from maestro.governance.lineage_render import to_dot, to_json, to_mermaid
from maestro.governance.registry import RegistryUnavailable, UnknownModel, one_line
from maestro.training import contract

__all__ = [
    "DeploymentsUnavailable",
    "Lineage",
    "RegistryUnavailable",
    "UnknownModel",
    "gather",
    "list_modeldeployments",
    "run",
    "to_dot",
    "to_json",
    "to_mermaid",
]

RENDERERS: dict[str, Callable[[Lineage], str]] = {
    "json": to_json,
    "mermaid": to_mermaid,
    "dot": to_dot,
}
# MLflow's own tags read here (mlflow.utils.mlflow_tags, without importing MLflow).
GIT_COMMIT, SOURCE_NAME, USER = "mlflow.source.git.commit", "mlflow.source.name", "mlflow.user"
PARENT_RUN_ID, DATASET_CONTEXT = "mlflow.parentRunId", "mlflow.data.context"
LINEAGE_TAGS = (
    contract.TAG_TRAININGRUN,
    contract.TAG_TRAININGRUN_UID,
    contract.TAG_DATASET_URI,
    contract.TAG_DATASET_VERSION,
    contract.TAG_FEATURE_SERVICE,
)
NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


class RegistryClient(Protocol):
    """The MlflowClient calls `gather` makes."""

    def get_model_version(self, name: str, version: str) -> Any: ...
    def get_registered_model(self, name: str) -> Any: ...
    def get_run(self, run_id: str) -> Any: ...


def gather(
    client: RegistryClient, name: str, version: str, deployments_source: DeploymentsSource
) -> Lineage:
    """Everything known about `name` version `version`; raises UnknownModel or
    RegistryUnavailable, never fails for the cluster (deployments are then unknown)."""
    if not name:
        raise UnknownModel("no model name given")
    if not version.isdigit():
        raise UnknownModel(f"version {version!r} of model {name!r} is not a version number")
    found = _ask(client.get_model_version, name, version)
    if found is None:
        if _ask(client.get_registered_model, name) is None:
            raise UnknownModel(f"no registered model named {name!r}")
        raise UnknownModel(f"registered model {name!r} has no version {version}")
    model = ModelVersion(
        name=name,
        version=str(found.version),
        source=found.source or None,
        run_id=found.run_id or None,
        status=str(found.status) if found.status else None,
        created_at=_from_millis(found.creation_timestamp),
        aliases=tuple(sorted(found.aliases or ())),
        tags=dict(found.tags or {}),
    )
    # A run deleted since keeps its versions: the lineage then stops at the version.
    own = _ask(client.get_run, model.run_id) if model.run_id else None
    parent_id = own.data.tags.get(PARENT_RUN_ID) if own is not None else None
    parent = _ask(client.get_run, parent_id) if parent_id and _lacks_lineage(own) else None
    runs = [r for r in (own, parent) if r is not None]  # the run's own facts come first
    tags = {k: v for r in reversed(runs) for k, v in r.data.tags.items()}
    lineage_run = next((r for r in runs if r.inputs.dataset_inputs), runs[0] if runs else None)
    targets = {model.uri, *([model.source] if model.source else [])}
    try:
        serving = serving_revisions(deployments_source(), targets)
        deployments = Deployments(known=True, serving=serving)
    except DeploymentsUnavailable as err:
        deployments = Deployments(known=False, reason=str(err))
    return Lineage(
        dataset=_dataset(tags, lineage_run.inputs.dataset_inputs if lineage_run else []),
        feature_service=tags.get(contract.TAG_FEATURE_SERVICE),
        training=_training(own, tags, lineage_run.info.run_id) if own and lineage_run else None,
        code=CodeVersion(git_commit=tags.get(GIT_COMMIT), source_name=tags.get(SOURCE_NAME)),
        model=model,
        deployments=deployments,
    )


def _lacks_lineage(run: Any) -> bool:
    return not run.inputs.dataset_inputs or any(t not in run.data.tags for t in LINEAGE_TAGS)


def _training(run: Any, tags: Mapping[str, str], lineage_run_id: str) -> Training:
    own_tags = run.data.tags
    return Training(
        run_id=run.info.run_id,
        run_name=run.info.run_name or None,
        experiment_id=run.info.experiment_id,
        status=run.info.status,
        trainingrun=tags.get(contract.TAG_TRAININGRUN),
        trainingrun_uid=tags.get(contract.TAG_TRAININGRUN_UID),
        parent_run_id=own_tags.get(PARENT_RUN_ID),
        lineage_run_id=lineage_run_id,
        user=own_tags.get(USER),
        params=dict(run.data.params),
        tags={k: v for k, v in own_tags.items() if not k.startswith("mlflow.")},
    )


def _dataset(tags: Mapping[str, str], inputs: Sequence[Any]) -> Dataset | None:
    """The training data: the lineage tags' URI and version, and the digest of the input
    logged for training (the one input when none says so)."""
    training = [
        i
        for i in inputs
        if any(t.key == DATASET_CONTEXT and t.value == "training" for t in (i.tags or ()))
    ]
    chosen = (training or list(inputs) or [None])[0]
    uri, version = tags.get(contract.TAG_DATASET_URI), tags.get(contract.TAG_DATASET_VERSION)
    if chosen is None:
        return Dataset(uri=uri, version=version) if uri or version else None
    data = chosen.dataset
    return Dataset(
        uri=uri or _source_uri(data.source),
        version=version,
        name=data.name or None,
        digest=data.digest or None,
        source_type=data.source_type or None,
    )


def _source_uri(source: str | None) -> str | None:
    """MLflow stores a dataset's source as JSON, e.g. {"url": ...} or {"uri": ...}."""
    try:
        parsed = json.loads(source or "")
    except ValueError:
        return source or None
    if not isinstance(parsed, dict):
        return None
    value = next((parsed[k] for k in ("uri", "url", "path") if parsed.get(k)), None)
    return str(value) if value else None


def _from_millis(millis: int | None) -> datetime | None:
    return datetime.fromtimestamp(millis / 1000, tz=UTC) if millis else None


def _ask(call: Callable[..., Any], *args: str) -> Any:
    """`call(*args)`, or None when MLflow says there is no such thing. MLflow's errors
    carry an error_code; connection errors are OSErrors. Anything else is a bug: raised."""
    try:
        return call(*args)
    except Exception as err:
        code = getattr(err, "error_code", None)
        if code in NOT_FOUND:
            return None
        if code is None and not isinstance(err, OSError):
            raise
        raise RegistryUnavailable(_registry_problem(err)) from err


def _registry_problem(err: Exception) -> str:
    text = one_line(err, 400)
    if isinstance(err, OSError) or any(
        sign in text for sign in ("Max retries exceeded", "Failed to establish", "timed out")
    ):
        return f"MLflow is unreachable: {text}"
    return f"MLflow failed to answer: {text}"


def run(tracking_uri: str, name: str, version: str, fmt: str, out: TextIO) -> int:
    """`maestro lineage`: print the lineage of `name` version `version` as `fmt` to `out`.
    Returns the exit code: 0, 1 when MLflow cannot be asked, 2 for bad input."""
    render = RENDERERS.get(fmt)
    if render is None:
        return _fail(f"unknown format {fmt!r}; expected one of {', '.join(RENDERERS)}", 2)
    if not tracking_uri:
        return _fail("no MLflow tracking URI: set MLFLOW_TRACKING_URI", 2)
    try:
        with _quick_failure():
            lineage = gather(_mlflow_client(tracking_uri), name, version, list_modeldeployments)
    except UnknownModel as err:
        return _fail(str(err), 2)
    except RegistryUnavailable as err:
        message = f"{err} (tracking URI {tracking_uri})"
        return _fail(_without_password(message, tracking_uri), 1)
    out.write(render(lineage))
    return 0


def _mlflow_client(tracking_uri: str) -> RegistryClient:
    from maestro.training.mlflow_plugins import load_mlflow_plugins_without_feast

    load_mlflow_plugins_without_feast()
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@contextmanager
def _quick_failure() -> Iterator[None]:
    """MLflow retries a refused connection seven times with exponential back-off, about
    four minutes, before it gives up; a command should answer sooner. MLflow reads these
    at each request, and only from the environment: they are set for the command's
    requests alone, unless the caller's environment sets them."""
    defaults = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
    added = [key for key in defaults if key not in os.environ]
    os.environ.update({key: defaults[key] for key in added})
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _without_password(text: str, uri: str) -> str:
    """`text` with the password of `uri` masked: MLflow's own messages quote the URL it
    asked, and error messages end up in CI logs."""
    password = urlsplit(uri).password
    return text.replace(f":{password}@", ":***@") if password else text


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
