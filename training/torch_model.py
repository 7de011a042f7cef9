"""The PyTorch tabular model as it is trained and as it is served.

`TabularNet` is an MLP plus what turns a pandas frame into its input (feature order and
standardisation) and its output into predictions (class labels, or the regression target in
its own units). It looks like a scikit-learn estimator (`predict`, `predict_proba`,
`classes_`) so the trainers' shared `evaluate` scores it, and `TabularNetPyfunc` serves it
through `mlflow.pyfunc.load_model`: a pandas frame in, predictions out.

This module imports only numpy, pandas, torch and MLflow, never the rest of Maestro: the
trainer pickles it by value into the logged model, so the model loads wherever those
packages are installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from mlflow.pyfunc.model import PythonModel
from torch import nn

CLASSIFICATION = "classification"
REGRESSION = "regression"


def build_mlp(n_features: int, hidden_sizes: Sequence[int], n_outputs: int) -> nn.Sequential:
    """Linear + ReLU per hidden size, then a linear output layer (logits, or one value)."""
    layers: list[nn.Module] = []
    width = n_features
    for size in hidden_sizes:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


class TabularNet:
    """A trained MLP with its input scaling and output decoding."""

    def __init__(
        self,
        net: nn.Module,
        *,
        task: str,
        features: Sequence[str],
        x_mean: npt.NDArray[np.float32],
        x_scale: npt.NDArray[np.float32],
        classes: Sequence[Any] = (),
        y_mean: float = 0.0,
        y_scale: float = 1.0,
    ) -> None:
        self.net = net.eval()
        self.task = task
        self.features = list(features)
        self.x_mean = x_mean
        self.x_scale = x_scale
        self.classes = list(classes)
        self.y_mean = y_mean
        self.y_scale = y_scale

    @property
    def classes_(self) -> npt.NDArray[Any]:
        return np.asarray(self.classes)

    def inputs(self, frame: Any) -> torch.Tensor:
        """The standardised feature matrix, columns in training order."""
        if not isinstance(frame, pd.DataFrame):
            frame = pd.DataFrame(np.asarray(frame), columns=self.features)
        values = frame[self.features].to_numpy(dtype=np.float32)
        return torch.from_numpy((values - self.x_mean) / self.x_scale)

    def outputs(self, frame: Any) -> torch.Tensor:
        with torch.no_grad():
            out: torch.Tensor = self.net(self.inputs(frame))
        return out

    def predict_proba(self, frame: Any) -> npt.NDArray[np.float64]:
        if self.task != CLASSIFICATION:
            raise AttributeError("predict_proba is only defined for classification")
        proba: npt.NDArray[np.float64] = torch.softmax(self.outputs(frame).double(), dim=1).numpy()
        return proba

    def predict(self, frame: Any) -> npt.NDArray[Any]:
        out = self.outputs(frame)
        if self.task == CLASSIFICATION:
            labels: npt.NDArray[Any] = self.classes_[out.argmax(dim=1).numpy()]
            return labels
        values: npt.NDArray[np.float64] = out[:, 0].double().numpy() * self.y_scale + self.y_mean
        return values


class TabularNetPyfunc(PythonModel):
    """MLflow's pyfunc face of a TabularNet: predictions for a frame of features."""

    def __init__(self, model: TabularNet) -> None:
        self.model = model

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> npt.NDArray[Any]:
        return self.model.predict(model_input)
