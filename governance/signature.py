"""Whether a candidate's input signature accepts what callers of the deployed model send.
Pure: MLflow signatures as their dict form (`ModelSignature.to_dict()["inputs"]`, a JSON
list of column or tensor specs)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

# Widening a column's type keeps callers working; anything else is retyping.
_WIDER = {
    "integer": {"long", "float", "double"},
    "long": {"double"},
    "float": {"double"},
}


def parse_inputs(raw: str | Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if isinstance(raw, str):
        parsed: list[dict[str, Any]] = json.loads(raw)
        return parsed
    return [dict(item) for item in raw]


def _name(spec: Mapping[str, Any], index: int) -> str:
    return str(spec.get("name") or f"#{index}")


def _type(spec: Mapping[str, Any]) -> str:
    if spec.get("type") == "tensor":
        tensor = spec.get("tensor-spec") or {}
        return f"tensor({tensor.get('dtype')}, shape={list(tensor.get('shape') or [])})"
    return str(spec.get("type"))


def incompatibilities(
    deployed: Sequence[Mapping[str, Any]], candidate: Sequence[Mapping[str, Any]]
) -> list[str]:
    """What a caller of `deployed` would break on with `candidate`: inputs removed or
    retyped (a widening such as long -> double is fine) and new required inputs."""
    if not deployed:
        return []  # nothing is promised to callers of a model without a signature
    if not candidate:
        return ["the candidate has no input signature; the deployed model has one"]
    old = {_name(s, i): s for i, s in enumerate(deployed)}
    new = {_name(s, i): s for i, s in enumerate(candidate)}
    problems = [
        f"input {name!r} ({_type(old[name])}) was removed" for name in old if name not in new
    ]
    for name, spec in old.items():
        if name not in new:
            continue
        before, after = _type(spec), _type(new[name])
        if before != after and after not in _WIDER.get(before, set()):
            problems.append(f"input {name!r} changed type from {before} to {after}")
    for name, spec in new.items():
        if name not in old and spec.get("required", True):
            problems.append(f"input {name!r} ({_type(spec)}) is new and required")
    return problems
