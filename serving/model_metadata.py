"""What the Open Inference Protocol's metadata and version checks answer, the same over
HTTP (serving.app) and gRPC (serving.grpc_server)."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from maestro.serving.errors import ModelNotFound
from maestro.serving.outputs import V2_BY_COLUMN_TYPE, v2_datatype
from maestro.serving.runtime import ServedModel
from maestro.serving.state import ServerState

SERVER_NAME = "maestro-serving"


def metadata(served: ServedModel, state: ServerState) -> dict[str, Any]:
    """The v2 model metadata, with the concrete registry version it serves: every input and
    output with its name, datatype and shape."""
    model = served.model
    schema = model.schema
    if schema.columns:
        inputs = [
            {"name": c.name, "datatype": V2_BY_COLUMN_TYPE.get(c.type, "BYTES"), "shape": [-1, 1]}
            for c in schema.columns
        ]
    elif schema.tensor is not None:
        t = schema.tensor
        inputs = [
            {"name": t.name or "input", "datatype": v2_datatype(t.dtype), "shape": list(t.shape)}
        ]
    else:
        inputs = []
    return {
        "name": model.name,
        "versions": [model.version] if model.version else [],
        "platform": f"mlflow-{model.flavor}",
        "inputs": inputs,
        "outputs": [
            {"name": o.name, "datatype": o.datatype, "shape": list(o.shape)} for o in model.outputs
        ]
        or [{"name": model.output_name, "datatype": "BYTES", "shape": [-1]}],
        "parameters": {
            "uri": model.uri,
            "model_version": model.version,
            "flavor": model.flavor,
            "convention": model.convention,
            "deployment": state.settings.deployment,
            "revision": state.settings.revision,
            "load_seconds": round(model.load_seconds, 3),
            "warmup_error": model.warmup_error,
            "shadow": state.shadow.model.uri
            if state.shadow and model.name == state.default
            else "",
        },
    }


def versioned(served: ServedModel, version: str | None) -> ServedModel:
    if version is not None and version != served.version:
        raise ModelNotFound(
            f"model {served.name!r} serves version {served.version or '(none)'}, not {version!r}"
        )
    return served


def server_version() -> str:
    try:
        return importlib.metadata.version("maestro-ml")
    except importlib.metadata.PackageNotFoundError:
        return "0"
