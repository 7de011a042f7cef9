"""Ensembles (mean, vote) of models sharing one signature, and the agreement test of shadow
mode. The combining and comparing functions are pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from maestro.serving.errors import LoadError
from maestro.serving.loader import LoadedModel
from maestro.serving.outputs import normalise

# Shadow answers agree with the served ones when labels are equal or numbers differ by less
# than this, relative to the larger magnitude.
RELATIVE_TOLERANCE = 1e-6


def combine_mean(answers: Sequence[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    """Element-wise mean of the members' numeric answers (scores, probabilities)."""
    stacked = np.stack([np.asarray(a, dtype=np.float64) for a in answers])
    mean: np.ndarray[Any, Any] = stacked.mean(axis=0)
    return mean


def combine_vote(answers: Sequence[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    """Per row, the label most members predicted; a tie goes to the earliest member's."""
    stacked = np.stack([np.asarray(a) for a in answers])
    if stacked.ndim != 2:
        raise ValueError(f"vote needs one label per row from each member, got {stacked.shape[1:]}")
    winners = [Counter(column.tolist()).most_common(1)[0][0] for column in stacked.T]
    return np.asarray(winners, dtype=stacked.dtype)


def agree(served: np.ndarray[Any, Any], shadow: np.ndarray[Any, Any]) -> bool:
    """Whether two answers to one request agree: same shape, and every value equal (labels)
    or within RELATIVE_TOLERANCE (numbers)."""
    if served.shape != shadow.shape:
        return False
    if served.dtype.kind in "fiu" and shadow.dtype.kind in "fiu":
        a = served.astype(np.float64)
        b = shadow.astype(np.float64)
        scale = np.maximum(np.abs(a), np.abs(b))
        return bool(np.all((a == b) | (np.abs(a - b) <= RELATIVE_TOLERANCE * scale)))
    return bool(np.array_equal(served, shadow))


def ensemble_model(name: str, method: str, members: Sequence[LoadedModel]) -> LoadedModel:
    """One model answering with the mean or vote of `members` (which must share inputs)."""
    first = members[0]
    for member in members[1:]:
        if member.schema != first.schema:
            raise LoadError(
                f"ensemble: model {member.name!r} has another input signature than"
                f" {first.name!r}; ensemble members must take the same inputs"
            )
    combine = combine_mean if method == "mean" else combine_vote
    predicts = [m.predict for m in members]

    def predict(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        rows = len(array)
        return combine([normalise(p(array), rows).first() for p in predicts])

    return LoadedModel(
        name=name,
        uri=f"ensemble:{method}({','.join(m.uri for m in members)})",
        version="+".join(m.version for m in members),
        flavor=f"ensemble-{method}",
        schema=first.schema,
        predict=predict,
        convention=method,
        example=first.example,
        output_name=first.output_name,
        load_seconds=max(m.load_seconds for m in members),
        warmup_error="; ".join(m.warmup_error for m in members if m.warmup_error),
        members=tuple(members),
    )
