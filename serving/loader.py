"""Load an MLflow model from any URI and pick the fastest way to call it.

A pyfunc predict costs about 2 ms whatever the number of rows (MLflow's schema enforcement
through pandas), while a scikit-learn pipeline's own `predict` on a NumPy array costs about
0.2 ms. So the model's native flavor is loaded where MLflow has one (sklearn, xgboost,
pytorch) and called on the array `schema.to_array` already validated; pyfunc is the general
fallback. Which calling convention works is decided by the warm-up predict, on the model's
input example (or a synthetic row), before the server reports ready.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import urllib.parse
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maestro.serving.errors import InputError, LoadError
from maestro.serving.outputs import (
    DEFAULT_OUTPUT,
    V2_BY_COLUMN_TYPE,
    Outputs,
    OutputSpec,
    normalise,
    v2_datatype,
)
from maestro.serving.schema import Column, InputSchema, Payload, Rows, Tensor, TensorInput
from maestro.serving.schema import to_array as schema_to_array
from maestro.serving.uris import RegistryRef, parse_models_uri

log = logging.getLogger(__name__)

Predict = Callable[[np.ndarray[Any, Any]], Any]

# pandas dtypes for the columns of a DataFrame built from a validated array.
_PANDAS_TYPES = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
    "string": "object",
    "binary": "object",
    "datetime": "datetime64[ns]",
}


@dataclass
class LoadedModel:
    """A model ready to predict on validated arrays, with what the server reports about it."""

    name: str
    uri: str
    version: str  # the concrete registry version ('' when the URI has none)
    flavor: str
    schema: InputSchema
    predict: Predict
    convention: str  # how `predict` calls the model: numpy, frame or pyfunc
    example: Payload
    output_name: str = DEFAULT_OUTPUT
    # As the signature declares them, else as the warm-up predict returned them.
    outputs: tuple[OutputSpec, ...] = ()
    load_seconds: float = 0.0
    warmup_error: str = ""
    members: tuple[LoadedModel, ...] = field(default=())

    def to_array(self, payload: Payload) -> np.ndarray[Any, Any]:
        return schema_to_array(self.schema, payload)


# --- resolving and downloading ------------------------------------------------------------------


def resolve(uri: str) -> tuple[str, str]:
    """The URI to download (a models:/ alias, stage or `latest` pinned to its concrete
    version, so an alias moving during the load cannot mix versions) and that version."""
    try:
        ref = parse_models_uri(uri)
    except ValueError as err:
        raise LoadError(str(err)) from None
    if ref is None or ref.model_id:
        return uri, ""
    version = _registry_version(ref)
    return f"models:/{ref.name}/{version}", version


def _registry_version(ref: RegistryRef) -> str:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        if ref.version:
            return str(client.get_model_version(ref.name, ref.version).version)
        if ref.alias:
            return str(client.get_model_version_by_alias(ref.name, ref.alias).version)
        if ref.stage.lower() == "latest":
            versions = client.search_model_versions(f"name = '{ref.name}'")
            if not versions:
                raise LoadError(f"registered model {ref.name!r} has no versions")
            return str(max(int(v.version) for v in versions))
        found = client.get_latest_versions(ref.name, stages=[ref.stage])
        if not found:
            raise LoadError(f"registered model {ref.name!r} has no version in stage {ref.stage}")
        return str(found[0].version)
    except MlflowException as err:
        raise LoadError(f"cannot resolve {ref}: {err.message}") from None


def local_copy(uri: str) -> str:
    """A local folder holding the model: a file URI or path as is, anything else downloaded
    (models:/, runs:/, s3://, mlflow-artifacts:/ ...) into a fresh temporary folder."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        path = urllib.parse.unquote(parsed.path)
    elif not parsed.scheme:
        path = uri
    else:
        import mlflow.artifacts

        target = tempfile.mkdtemp(prefix="maestro-model-")
        try:
            return str(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=target))
        except Exception as err:
            raise LoadError(f"cannot download {uri}: {err}") from err
    if not os.path.isfile(os.path.join(path, "MLmodel")):
        raise LoadError(f"{uri}: no MLmodel file in {path}")
    return path


# --- schema and example ---------------------------------------------------------------------


def schema_from_signature(signature: Any) -> InputSchema:
    """Our InputSchema from an MLflow ModelSignature. Inputs it cannot check with NumPy
    (several named tensors, array/object/map columns) give an empty schema: the values go
    to the model unchecked."""
    from mlflow.types.schema import DataType

    if signature is None or signature.inputs is None:
        return InputSchema()
    inputs = signature.inputs
    if inputs.is_tensor_spec():
        specs = inputs.inputs
        if len(specs) != 1:
            return InputSchema()
        spec = specs[0]
        return InputSchema(
            tensor=TensorInput(np.dtype(spec.type), tuple(spec.shape), spec.name or "")
        )
    columns = []
    for i, spec in enumerate(inputs.inputs):
        if not isinstance(spec.type, DataType):
            return InputSchema()
        columns.append(Column(spec.name or str(i), spec.type.name, bool(spec.required)))
    return InputSchema(columns=tuple(columns))


def output_name(signature: Any) -> str:
    outputs = getattr(signature, "outputs", None)
    if outputs is not None and not outputs.is_tensor_spec() and len(outputs.inputs) == 1:
        name = outputs.inputs[0].name
        if name:
            return str(name)
    return DEFAULT_OUTPUT


def output_specs(signature: Any, warm: Outputs | None) -> tuple[OutputSpec, ...]:
    """Every output's name, v2 datatype and shape: from the signature's outputs, else from
    the warm-up prediction (rows as -1), else none."""
    outputs = getattr(signature, "outputs", None)
    if outputs is not None:
        from mlflow.types.schema import DataType

        specs = outputs.inputs
        if outputs.is_tensor_spec():
            return tuple(
                OutputSpec(
                    s.name or (DEFAULT_OUTPUT if len(specs) == 1 else str(i)),
                    v2_datatype(np.dtype(s.type)),
                    tuple(s.shape),
                )
                for i, s in enumerate(specs)
            )
        if all(isinstance(s.type, DataType) for s in specs):
            name = output_name(signature)
            return tuple(
                OutputSpec(
                    name if len(specs) == 1 else (s.name or str(i)),
                    V2_BY_COLUMN_TYPE.get(s.type.name, "BYTES"),
                    (-1,),
                )
                for i, s in enumerate(specs)
            )
    if warm is None:
        return ()
    return tuple(
        OutputSpec(n, v2_datatype(a.dtype), (-1, *a.shape[1:]))
        for n, a in zip(warm.names, warm.arrays, strict=True)
    )


def example_payload(meta: Any, path: str, schema: InputSchema) -> Payload:
    """The model's logged input example, else one synthetic row."""
    try:
        example = meta.load_input_example(path)
    except Exception:  # an example MLflow cannot read back is no reason not to serve
        example = None
    if example is not None and hasattr(example, "columns"):
        return Rows(example.to_numpy().tolist(), [str(c) for c in example.columns], "example")
    if isinstance(example, np.ndarray):
        return Tensor(example, None, "example")
    return synthetic_payload(schema)


def synthetic_payload(schema: InputSchema) -> Payload:
    fill = {"boolean": False, "string": "", "binary": "", "datetime": "2000-01-01"}
    if schema.columns:
        row = [
            fill.get(c.type, 0.0 if c.type in ("double", "float") else 0) for c in schema.columns
        ]
        return Rows([row], schema.names, "example")
    if schema.tensor is not None:
        shape = [1 if d < 0 else d for d in schema.tensor.shape]
        return Tensor(np.zeros(shape, dtype=schema.tensor.dtype), None, "example")
    return Tensor([[0.0]], None, "example")


def to_frame(schema: InputSchema, array: np.ndarray[Any, Any]) -> Any:
    """A validated 2-D array as the DataFrame a pyfunc (or a name-selecting pipeline) takes."""
    import pandas as pd

    frame = pd.DataFrame(array, columns=schema.names)
    return frame.astype({c.name: _PANDAS_TYPES[c.type] for c in schema.columns})


# --- calling conventions --------------------------------------------------------------------


def _sklearn(path: str, conf: dict[str, Any], schema: InputSchema) -> list[tuple[str, Predict]]:
    import mlflow.sklearn

    model = mlflow.sklearn.load_model(path)
    method = getattr(model, str(conf.get("predict_fn") or "predict"))
    names = getattr(model, "feature_names_in_", None)
    candidates: list[tuple[str, Predict]] = (
        [("frame", lambda a: method(to_frame(schema, a)))] if schema.columns else []
    )
    if names is None or list(names) == schema.names:
        # Fitted on a DataFrame whose columns are the signature's, in the same order: the
        # array is the same data, so sklearn's per-call "no feature names" warning is noise.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        candidates.insert(0, ("numpy", method))
    return candidates


def _xgboost(path: str, schema: InputSchema) -> list[tuple[str, Predict]]:
    import mlflow.xgboost
    import xgboost

    model = mlflow.xgboost.load_model(path)
    if isinstance(model, xgboost.Booster):
        booster = model

        def booster_frame(a: np.ndarray[Any, Any]) -> Any:
            return booster.predict(xgboost.DMatrix(to_frame(schema, a)))

        candidates: list[tuple[str, Predict]] = [("numpy", booster.inplace_predict)]
        if schema.columns:
            candidates.append(("frame", booster_frame))
        return candidates
    candidates = [("numpy", model.predict)]
    if schema.columns:
        candidates.append(("frame", lambda a: model.predict(to_frame(schema, a))))
    return candidates


def _pytorch(path: str) -> list[tuple[str, Predict]]:
    import mlflow.pytorch
    import torch

    module = mlflow.pytorch.load_model(path, map_location="cpu")
    # A torch.export program (MLflow's pt2 format) has no train mode to leave.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        module.eval()
    parameter = next(module.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32

    def call(a: np.ndarray[Any, Any]) -> Any:
        with torch.inference_mode():
            out = module(torch.as_tensor(a, dtype=dtype))
        return out.numpy() if isinstance(out, torch.Tensor) else out

    return [("numpy", call)]


def _pyfunc(path: str, schema: InputSchema) -> Predict:
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(path)
    if schema.columns:
        return lambda a: model.predict(to_frame(schema, a))
    return lambda a: model.predict(a)


# --- loading ----------------------------------------------------------------------------------


def load_model(name: str, uri: str) -> LoadedModel:
    """Resolve, download, load and warm up one model (MLflow's tracking URI is already set)."""
    from mlflow.models import Model

    started = time.perf_counter()
    concrete, version = resolve(uri)
    path = local_copy(concrete)
    try:
        meta = Model.load(path)
    except Exception as err:
        raise LoadError(f"{uri}: cannot read its MLmodel: {err}") from err
    schema = schema_from_signature(meta.signature)
    flavors = meta.flavors
    try:
        if "sklearn" in flavors:
            flavor = "sklearn"
            pyfunc_conf = flavors.get("python_function", {})
            candidates = _sklearn(path, pyfunc_conf, schema)
        elif "xgboost" in flavors:
            flavor, candidates = "xgboost", _xgboost(path, schema)
        elif "pytorch" in flavors:
            flavor, candidates = "pytorch", _pytorch(path)
        else:
            flavor, candidates = "python_function", []
    except Exception as err:  # a native loader failing leaves pyfunc to try
        log.warning("native load of %s failed, using pyfunc: %s", uri, err)
        flavor, candidates = "python_function", []
    example = example_payload(meta, path, schema)
    convention, predict, error, warm = _warm_up(uri, path, schema, candidates, example)
    model = LoadedModel(
        name=name,
        uri=uri,
        version=version,
        flavor=flavor,
        schema=schema,
        predict=predict,
        convention=convention,
        example=example,
        output_name=output_name(meta.signature),
        outputs=output_specs(meta.signature, warm),
        warmup_error=error,
    )
    model.load_seconds = time.perf_counter() - started
    return model


def _warm_up(
    uri: str,
    path: str,
    schema: InputSchema,
    candidates: list[tuple[str, Predict]],
    example: Payload,
) -> tuple[str, Predict, str, Outputs | None]:
    """Predict once on the example with each convention in turn; the first that works is
    used. When none does, the first is kept and the error reported: a model whose predict
    raises then answers 500 with that error, which is how a broken version shows up."""
    try:
        array = schema_to_array(schema, example)
    except InputError as err:
        log.warning(
            "%s: input example does not fit the signature (%s); using a synthetic row", uri, err
        )
        array = schema_to_array(schema, synthetic_payload(schema))
    errors: list[str] = []
    tried: list[tuple[str, Predict]] = []
    for convention, predict in [*candidates, ("pyfunc", None)]:
        if predict is None:
            try:
                predict = _pyfunc(path, schema)
            except Exception as err:
                errors.append(f"pyfunc: cannot load: {err}")
                break
        tried.append((convention, predict))
        try:
            warm = normalise(predict(array), len(array))
        except Exception as err:
            errors.append(f"{convention}: {type(err).__name__}: {err}")
            continue
        return convention, predict, "", warm
    if not tried:
        raise LoadError(f"{uri}: cannot load the model: {'; '.join(errors)}")
    log.warning("%s: warm-up predict failed (%s)", uri, "; ".join(errors))
    convention, predict = tried[0]
    return convention, predict, errors[0], None
